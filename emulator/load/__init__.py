"""`emu load`: drive a project under its real limits and report capacity, saturation and cost.

- `profile`: what to send (concurrency, rate or ramp; the requests), parsed and checked;
- `settings`: `--set` and `--compare`, turned into config `Overrides`;
- `driver`: the load generator, a process of its own (aiohttp);
- `sampler`: `/_emu/status?usage=1` and `/_emu/events` read during the run;
- `stats`: percentiles; `report` and `usage`: the figures of one run; `verdict`: their
  plain-words reading;
- `cost`: the platform's rates applied to the run (`rates.json`);
- `run`: one run, or several one after another; `text` and `html`: the reports;
- `feed`: a running load's progress on the emu it drives, for the dashboard.
"""
