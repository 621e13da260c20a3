"""The tools of the e2e_gateway suite's gateway, shared by its conftest and by test modules that
start a gateway of their own (a module of its own: `from conftest import` finds whichever conftest
pytest imported first)."""

ROUTES = """
defaults:
  timeout: 30
  progress: true
tools:
  - name: echo
    description: Echo a message
    parameters:
      message: {type: string, required: true}
    route: [echo]
  - name: pipeline
    description: Double, then add five (async)
    parameters:
      value: {type: integer, required: true}
    route: [doubler, incrementer]
    async: true
  - name: pipeline_sync
    description: Double, then add five
    parameters:
      value: {type: integer, required: true}
    route: [doubler, incrementer]
  - name: error
    description: Always fails
    parameters:
      should_fail: {type: boolean, default: true}
    route: [fail]
  - name: fanout
    description: One branch per count (async)
    parameters:
      count: {type: integer, required: true}
    route: [fanout, branch]
    async: true
  - name: fanjoin
    description: One branch per count, joined into one result (async)
    parameters:
      count: {type: integer, required: true}
    route: [fanout, branch, joiner]
    async: true
  - name: fanjoin_paced
    description: Paced branches joined into one result (async)
    parameters:
      count: {type: integer, required: true}
    route: [fanout, paced, joiner]
    async: true
  - name: fanjoin_paced_sync
    description: Paced branches joined into one result
    parameters:
      count: {type: integer, required: true}
    route: [fanout, paced, joiner]
  - name: fanbatch
    description: One branch per count, the branches through a batching actor (async)
    parameters:
      count: {type: integer, required: true}
    route: [fanout, batched]
    async: true
  - name: empty
    description: Returns nothing
    parameters:
      message: {type: string}
    route: [empty]
  - name: timeout
    description: Sleeps longer than its timeout
    parameters:
      sleep_seconds: {type: number, required: true}
    route: [sleeper]
    timeout: 2
  - name: slow_task
    description: Two actors, the first sleeps (MCP task and cancellation tests)
    parameters:
      tag: {type: string, required: true}
      sleep: {type: number, default: 0}
    route: [slow-first, slow-second]
    async: true
"""
