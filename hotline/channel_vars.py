"""The dialplan contract: every channel variable the Python code and the dialplan files
(ivr/dialplans/*.conf, asterisk_conf/extensions.conf) exchange, named once here, with who sets
it and who reads it. The .conf files point here; a variable used on both sides is added here
first and imported by the code that uses it.
"""

from __future__ import annotations

# ----------------------------------------------------------------------------- globals
#: agi://host:port of the service's FastAGI server. Set: asterisk_conf/extensions.conf
#: [globals] (rendered by sandbox/ from the settings). Read: every AGI(${HOTLINE_FASTAGI}/route).
HOTLINE_FASTAGI = "HOTLINE_FASTAGI"
#: a second service instance's agi://host:port, tried when HOTLINE_FASTAGI fails (unreachable,
#: busy, or the session ended without a result); empty: none. Set: asterisk_conf/extensions.conf
#: [globals] (sandbox: the fastagi_fallback setting). Read: survey.conf, callback.conf.
HOTLINE_FASTAGI_FALLBACK = "HOTLINE_FASTAGI_FALLBACK"
#: the sandbox instance's name. Set: asterisk_conf/extensions.conf [globals]. Read: logs only.
HOTLINE_INSTANCE = "HOTLINE_INSTANCE"

#: the scripted test caller's steps. Set: the tests (AMI Originate). Read: survey-test.conf
#: (the sandbox's test dialplan only; never in production).
HOTLINE_TEST_SCRIPT = "HOTLINE_TEST_SCRIPT"

# ----------------------------------------------------------------------------- the caller's leg
#: "1" on the caller's own leg (no leading underscore: agents' legs do not inherit it).
#: Set: inbound.conf. Read: ivr/handoff.py (the API hand-off finds the caller's channel).
HOTLINE_CALLER_LEG = "HOTLINE_CALLER_LEG"
#: the queue the call waited in. Set: inbound.conf, handoff.conf (QUEUENAME), or a site's own
#: dialplan. Read: ivr/survey_flow.py (stored with the call).
HOTLINE_QUEUE = "HOTLINE_QUEUE"
#: the agent's 工号. Set: inbound.conf / handoff.conf (MEMBERNAME) or a site's dialplan.
#: Read: ivr/survey_flow.py (stored with the call).
HOTLINE_AGENT = "HOTLINE_AGENT"
#: "1" for a caller who left the queue before any agent took the call. Set: inbound.conf
#: (hang-up handler). Read: ivr/survey_flow.py (kept as abandoned, DOMAIN.md rule 1).
HOTLINE_ABANDONED = "HOTLINE_ABANDONED"
#: the 工单 number and the department of the call. Set: ivr/handoff.py (AMI Setvar, from the
#: HTTP hand-off) or a site's dialplan. Read: ivr/survey_flow.py (stored with the call).
HOTLINE_CASE_ID = "HOTLINE_CASE_ID"
HOTLINE_DEPT = "HOTLINE_DEPT"
#: how the caller was handed to the survey: queue | key | api. Set: handoff.conf.
#: Read: handoff.conf (logs only).
HOTLINE_HANDOFF = "HOTLINE_HANDOFF"

#: "1" once the call's ledger event (CEL user event "hotline_call") was emitted on this channel.
#: Set and read: survey.conf [hotline-call-ledger] only (one event per channel); the event's
#: values are read by ivr/call_ledger.py from Asterisk's cel_custom file, not from the channel.
HOTLINE_LEDGER = "HOTLINE_LEDGER"
#: the CEL user event name. Set: survey.conf (CELGenUserEvent). Read: ivr/call_ledger.py.
CALL_LEDGER_EVENT = "hotline_call"

# ----------------------------------------------------------------------------- results
#: (read by ivr/survey_flow.py in one GET FULL VARIABLE, each value wrapped in URIENCODE: the
#: dialplan's Asterisk needs func_uri, asterisk_conf/modules.conf)
#: the survey's answer: the canonical level 1..5 (hotline/levels.py) or "none".
#: Set: ivr/survey.py (by the survey route), survey.conf (cleared before, "none" on failure).
#: Read: inbound.conf, survey.conf, a site's dialplan.
SURVEY_RESULT = "SURVEY_RESULT"
#: the 回访 answer: 1..5, "dnc" (do-not-call) or "none". Set: callback_scheduler/followup.py.
#: Read: callback.conf, a site's dialplan.
CALLBACK_RESULT = "CALLBACK_RESULT"
#: the 回访 attempt a follow-up call belongs to. Set: callback_scheduler/dialer.py (AMI
#: Originate Variable). Read: callback_scheduler/followup_agi.py, callback.conf (logs).
CALLBACK_ATTEMPT_ID = "CALLBACK_ATTEMPT_ID"

# ----------------------------------------------------------------------------- errors
#: why an AGI route could not run; empty when it ran. Cleared: survey.conf, callback.conf.
#: Set: ivr/agi/server.py (unknown-route, busy, internal), ivr/dialog.py (prompt-missing),
#: ivr/agi_scripts/survey.py (internal). Read: survey.conf, callback.conf, inbound.conf.
HOTLINE_AGI_ERROR = "HOTLINE_AGI_ERROR"
AGI_ERROR_UNKNOWN_ROUTE = "unknown-route"
AGI_ERROR_BUSY = "busy"
AGI_ERROR_PROMPT_MISSING = "prompt-missing"
AGI_ERROR_INTERNAL = "internal"
