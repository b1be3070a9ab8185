"""Print frames from edge's tracks bus: tracks_subscriber.py [ENDPOINT [CAMERA]]."""

import json
import sys

import zmq

sub = zmq.Context.instance().socket(zmq.SUB)
sub.connect(sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5560")
sub.setsockopt_string(zmq.SUBSCRIBE, sys.argv[2] if len(sys.argv) > 2 else "")  # "" = all cameras
while True:
    topic, payload = sub.recv_multipart()
    msg = json.loads(payload)
    print(topic.decode(), msg["seq"], dict(zip(msg["ids"], msg["boxes"], strict=True)), flush=True)
