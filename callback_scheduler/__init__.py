"""回访 / 邀评 callbacks: cases and campaigns become tasks, tasks become dial attempts.

Layout (pure policy first, I/O at the edges):

- ``rules``        campaign settings (windows, attempts, retry delays, caps) and outcomes
- ``windows``      when a citizen may be called: Beijing-time windows, official working days
- ``lifecycle``    campaign and task statuses; what happens to a task after an attempt
- ``pacing``       simultaneous-call caps (overall, per trunk, per campaign), calls per minute
- ``attempt``      one dial attempt: Originate sent → OriginateResponse / Hangup / timeout / lost
- ``followup``     the follow-up IVR (回访 questions, 1–5 menu, reason, do-not-call key)
- ``csvimport``    CSV rows for a campaign, validated all-or-nothing
- ``cases``, ``campaigns``, ``tasks``, ``claims``, ``results``  the database side
- ``dialer``       AMI Originate and the events that end each attempt; reconciliation
- ``followup_agi`` the FastAGI ``callback`` route (registered in service/agi.py)
- ``worker``       the ``serve_scheduler`` worker of ``hotline serve``
- ``cli``          ``hotline campaign ...`` and ``hotline callback ...``

How a supervisor uses it: ``hotline campaign --help`` / ``hotline callback --help`` and
the campaigns part of the HTTP API (/api/v1/openapi.json).
"""
