"""moto's DynamoDB emulator, answering one request at a time.

`moto_server` serves each request on a thread of its own, and moto applies
an UpdateItem as a read, change and write in Python: two concurrent ADDs on
one item can lose one, which DynamoDB never does (the conformance race test
caught it under load). Serving requests one after another makes every
request atomic, as DynamoDB's are. moto runs on one core either way.

Usage: python moto-serial.py PORT
"""

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

app = DomainDispatcherApplication(create_backend_app)
run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=False, use_reloader=False)
