// ESLint rule emu/protocol: the JavaScript side of the messages with emu, checked against their one
// definition, emulator/worker/js/protocol.json (the Python side: tests/unit/test_protocol.py).
//   role "shim" (shim.js): each `<x>.call("op", { ... })` names a runtime op and sends its
//     request fields, no other (spreads of `this.#who` or a local object literal are followed);
//     every op is called somewhere.
//   role "runner" (runner.mjs): each `send({ t: "kind", ... })` is a defined message with its
//     fields; each `command.op === "x"` a defined command, `command.<field>` one of its fields;
//     every message is sent and every command handled.
import { readFileSync } from "node:fs";

export const PROTOCOL = JSON.parse(
  readFileSync(new URL("../../emulator/worker/js/protocol.json", import.meta.url), "utf8"),
);

const required = (fields) => Object.keys(fields).filter((f) => !fields[f].endsWith("?"));

function keyName(node) {
  if (node.computed) return null;
  if (node.key.type === "Identifier") return node.key.name;
  if (node.key.type === "Literal") return String(node.key.value);
  return null;
}

/** "this.#who" or "counts": what a spread refers to, when it is one of those. */
function refName(node) {
  if (node.type === "Identifier") return node.name;
  if (node.type === "MemberExpression" && node.object.type === "ThisExpression" && !node.computed) {
    return `this.${node.property.type === "PrivateIdentifier" ? "#" : ""}${node.property.name}`;
  }
  return null;
}

function create(context) {
  const { role } = context.options[0];
  const objects = new Map(); // name -> the object literal assigned to it
  const calls = []; // [node, op, object literal or null]
  const seen = new Set(); // ops called, messages sent, commands handled

  /** The keys of an object literal, `optional` for those only sometimes there; null when a
   * spread cannot be followed (reported). */
  function keysOf(object, optional = false, depth = 0) {
    const keys = new Map();
    for (const prop of object.properties) {
      if (prop.type === "Property") {
        const name = keyName(prop);
        if (name === null) context.report({ node: prop, message: "a computed key: name the field" });
        else keys.set(name, optional);
        continue;
      }
      const arg = prop.argument;
      const branches =
        arg.type === "ConditionalExpression" ? [arg.consequent, arg.alternate] : null;
      if (branches !== null && branches.every((b) => b.type === "ObjectExpression")) {
        for (const b of branches) for (const [k] of keysOf(b, true, depth)) keys.set(k, true);
        continue;
      }
      const target = objects.get(refName(arg));
      if (target === undefined || depth > 3) {
        context.report({ node: prop, message: "a spread emu/protocol cannot follow: spread an object literal" });
        return null;
      }
      for (const [k, o] of keysOf(target, optional, depth + 1)) keys.set(k, o);
    }
    return keys;
  }

  function checkFields(node, what, fields, object) {
    const keys = keysOf(object);
    if (keys === null) return;
    for (const key of keys.keys()) {
      if (!(key in fields)) context.report({ node, message: `${what}: field '${key}' is not in protocol.json` });
    }
    for (const field of required(fields)) {
      if (!keys.has(field) || keys.get(field)) {
        context.report({ node, message: `${what}: field '${field}' is missing (protocol.json)` });
      }
    }
  }

  const shim = {
    AssignmentExpression(node) {
      const name = refName(node.left);
      if (name !== null && node.right.type === "ObjectExpression") objects.set(name, node.right);
    },
    VariableDeclarator(node) {
      if (node.id.type === "Identifier" && node.init?.type === "ObjectExpression") objects.set(node.id.name, node.init);
    },
    CallExpression(node) {
      const { callee, arguments: args } = node;
      if (callee.type !== "MemberExpression" || callee.computed || callee.property.name !== "call") return;
      if (args[0]?.type !== "Literal" || typeof args[0].value !== "string") return;
      calls.push([node, args[0].value, args[1]?.type === "ObjectExpression" ? args[1] : null]);
    },
    "Program:exit"(program) {
      for (const [node, op, object] of calls) {
        seen.add(op);
        const call = PROTOCOL.runtime[op];
        if (call === undefined) {
          context.report({ node, message: `runtime op '${op}' is not in protocol.json` });
        } else if (object === null) {
          context.report({ node, message: `runtime op '${op}': pass its body as an object literal` });
        } else {
          checkFields(node, `runtime op '${op}'`, call.request, object);
        }
      }
      for (const op of Object.keys(PROTOCOL.runtime)) {
        if (!seen.has(op)) context.report({ node: program, message: `runtime op '${op}' (protocol.json) is never called` });
      }
    },
  };

  const commandFields = new Set(["op", ...Object.values(PROTOCOL.commands).flatMap(Object.keys)]);
  const runner = {
    CallExpression(node) {
      const [arg] = node.arguments;
      if (node.callee.type !== "Identifier" || node.callee.name !== "send" || arg?.type !== "ObjectExpression") return;
      const t = arg.properties.find((p) => p.type === "Property" && keyName(p) === "t");
      if (t === undefined || t.value.type !== "Literal") {
        context.report({ node, message: "send(): a message needs a literal 't'" });
        return;
      }
      const kind = t.value.value;
      seen.add(`t:${kind}`);
      const fields = PROTOCOL.messages[kind];
      if (fields === undefined || PROTOCOL.emu_messages.includes(kind)) {
        context.report({ node, message: `message '${kind}' is not in protocol.json` });
        return;
      }
      checkFields(node, `message '${kind}'`, { ...fields, t: "string" }, arg);
    },
    BinaryExpression(node) {
      if (node.operator !== "===") return;
      const [member, literal] = node.left.type === "MemberExpression" ? [node.left, node.right] : [node.right, node.left];
      if (member.type !== "MemberExpression" || member.computed || member.property.name !== "op") return;
      if (literal.type !== "Literal") return;
      seen.add(`op:${literal.value}`);
      if (!(literal.value in PROTOCOL.commands)) {
        context.report({ node, message: `command '${literal.value}' is not in protocol.json` });
      }
    },
    MemberExpression(node) {
      if (node.object.type !== "Identifier" || node.object.name !== "command" || node.computed) return;
      if (!commandFields.has(node.property.name)) {
        context.report({ node, message: `command field '${node.property.name}' is not in protocol.json` });
      }
    },
    "Program:exit"(program) {
      for (const kind of Object.keys(PROTOCOL.messages)) {
        if (!PROTOCOL.emu_messages.includes(kind) && !seen.has(`t:${kind}`)) {
          context.report({ node: program, message: `message '${kind}' (protocol.json) is never sent` });
        }
      }
      for (const op of Object.keys(PROTOCOL.commands)) {
        if (!seen.has(`op:${op}`)) context.report({ node: program, message: `command '${op}' (protocol.json) is never handled` });
      }
    },
  };
  return role === "shim" ? shim : runner;
}

export const rule = {
  meta: {
    type: "problem",
    docs: { description: "runtime messages as emulator/worker/js/protocol.json defines them" },
    schema: [
      {
        type: "object",
        properties: { role: { enum: ["shim", "runner"] } },
        required: ["role"],
        additionalProperties: false,
      },
    ],
  },
  create,
};

export default { rules: { protocol: rule } };
