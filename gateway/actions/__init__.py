"""Actions: what rules and people decide, delivered to devices and people reliably.

``policy``      which commands may reach which device (``devices:``)
``commands``    a device's command state and its transitions (pure: time is an argument)
``dispatcher``  commands with ids, acknowledgements, retries, pacing, supersession
``alerts``      where alert events go; the gateway's own alerts (``system_alert``)
``notify``      notifiers (webhook, log) with a bounded queue, never blocking readings
``silences``    muting notifications for a rule/device for a while
"""
