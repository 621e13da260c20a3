"""The smallest Asya actor: a plain function from payload to payload.

Nothing here imports Asya; `python3 -c "import hello; print(hello.greet({'name': 'Ada'}))"`
runs it without any queue.
"""


def greet(payload):
    name = payload.get("name", "world") if isinstance(payload, dict) else str(payload)
    return {"greeting": f"hello {name}"}
