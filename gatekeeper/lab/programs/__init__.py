"""The programs the lab copies into its sandbox; standalone scripts (standard library only).

- ``agent.py`` becomes ``Agent/start.py``: the agent (``/health``, ``/chat``).
- ``model_server.py`` becomes ``Agent/deploy_api_server_scripts/deploy_api_server_<model>.py``.

They are never imported by gatekeeper itself: the testbed reads their text and writes it into the
sandbox, where they run with ``python3`` like the paper's agent scaffold did.
"""
