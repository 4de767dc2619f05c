"""The dialplan contract's names: the contexts, channel variables, AGI scripts and prompts ctid and
Asterisk share (../shared/design/ARCHITECTURE.md, "Dialplan contract"; config/asterisk/extensions_ctid.conf).
"""

from __future__ import annotations

# contexts
INBOUND = "ctid-inbound"  # DIDs arrive here; the inbound AGI script identifies the caller
WAIT = "ctid-wait"  # a caller waits here, on music, until ctid Redirects it
CONNECT = "ctid-connect"  # Dial(CTID_AGENT_DIAL, CTID_RING_TIMEOUT); back to ctid-wait if not answered
AFTER = "ctid-after"  # the agent hung up first: the survey or a hang-up
TRANSFER = "ctid-transfer"  # an agent's phone transfers a caller to queue Q: extension Q here
OUTBOUND = "ctid-outbound"  # an answered dialer call: AMD, then the outbound AGI script
ABANDON = "ctid-abandon"  # no agent in time for an answered outbound call
CALLBACK = "ctid-callback"  # the callback offer (the callback AGI script)
VOICEMAIL = "ctid-voicemail"  # a message for the queue
HOLD = "ctid-hold"  # MusicOnHold with CTID_MOH's class, until ctid Redirects the caller back
MESSAGE = "ctid-message"  # Playback(CTID_MESSAGE), then back to ctid-wait

# channel variables
QUEUE_VAR = "CTID_QUEUE"
CUSTOMER_VAR = "CTID_CUSTOMER"
TIER_VAR = "CTID_TIER"
CAMPAIGN_VAR = "CTID_CAMPAIGN"
CONTACT_VAR = "CTID_CONTACT"
SENT_TO_VAR = "CTID_SENT_TO"  # why ctid moved the contact out of its queue, "action:reason"
CALLBACK_VAR = "CTID_CALLBACK"  # "accepted" or "declined"
AGENT_DIAL_VAR = "CTID_AGENT_DIAL"
RING_TIMEOUT_VAR = "CTID_RING_TIMEOUT"
MOH_VAR = "CTID_MOH"
MESSAGE_VAR = "CTID_MESSAGE"
SURVEY_VAR = "CTID_SURVEY"

# AGI scripts (agi://${CTID_HOST}:4573/<script>) served by ivr
INBOUND_SCRIPT = "inbound"
OUTBOUND_SCRIPT = "outbound"
SURVEY_SCRIPT = "survey"
CALLBACK_SCRIPT = "callback"

# prompts the contract plays
ABANDON_PROMPT = "ctid-abandon-info"
CALLBACK_OFFER_PROMPT = "ctid-callback-offer"
