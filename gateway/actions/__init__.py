"""Actions: what rules and people decide, delivered to devices and people reliably.

``policy``      which commands may reach which device (``devices:``)
``dispatcher``  commands with ids, acknowledgements, retries, pacing, supersession
``notify``      notifiers (webhook, log) with a bounded queue, never blocking readings
``silences``    muting notifications for a rule/device for a while
"""
