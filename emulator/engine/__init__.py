"""The Docker engine: the only package that imports the Docker SDK. `docker_backend.py` (every
call bounded), `docker_types.py` (its records and errors), `docker_logs.py`, `choice.py` (which
engine: local, remote, Swarm), `swarm.py`, `in_container.py`, `bridge.py`."""
