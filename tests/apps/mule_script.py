"""A mule's script (`mule = mule_script.py`): records each text message it gets (its farm's
too). A script mule also reads the queue every mule shares, as in uWSGI, so a pickled
`@mulefunc` call may land here: it goes to `uwsgi.mule_msg_hook` like in a plain mule."""

import os

import uwsgi

OUT = os.environ["APP_OUT"]
with open(os.path.join(OUT, "script-started-%d" % os.getpid()), "w"):
    pass
while True:
    message = uwsgi.mule_get_msg()
    try:
        text = message.decode()
    except UnicodeDecodeError:
        uwsgi.mule_msg_hook(message)
        continue
    with open(os.path.join(OUT, "events.log"), "a") as log:
        log.write("script %d %d %s\n" % (os.getpid(), uwsgi.mule_id(), text))
