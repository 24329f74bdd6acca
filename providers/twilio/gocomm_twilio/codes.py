"""Twilio's error codes for the Messages API, classified (DESIGN §3).

The codes are those of Twilio's error dictionary (https://www.twilio.com/docs/api/errors) that
creating a message can answer: the request's own errors (2xxxx) and the delivery errors a
message can be created ``failed`` with (3xxxx). Each is one of:

- **retryable**: throttling, Twilio's own failures, a full queue, a carrier's congestion;
- **permanent**: credentials, the account, the sender, the body or the Messaging Service. The
  send stops; the numbers not reached stay owed, so failover takes them to another vendor;
- **unserved** (:data:`UNSERVED`): about one ``To`` that this account cannot reach (the
  country is not enabled, a trial account's unverified number, no route). That number stays
  owed, not refused, so failover offers it to another vendor; the send goes on for the others;
- **refusing**: about one ``To``, refused for good (unsubscribed, a landline, a short code,
  the sender itself, blocked or no longer existing); the send goes on for the others;
- **invalid**: the ``To`` number itself is invalid, refused as
  :class:`~gocomm.errors.InvalidRecipient`.

The HTTP status decides where it is unambiguous: 401/403 is permanent (credentials) and 429 or
5xx retryable, whatever the code. A code in none of these is retryable.
"""

from __future__ import annotations

from gocomm.httpvendor import CodeTable

__all__ = ["ERROR_CODES", "RECIPIENT_CODES", "UNSERVED"]

#: About one ``To`` this account cannot reach: it stays owed (not refused), the send goes on.
UNSERVED = frozenset(
    {
        "21408",  # sending to this region (the To's country) is not enabled on the account
        "21608",  # a trial account sends only to verified numbers
        "21612",  # Twilio cannot route from this sender to this To
    }
)

ERROR_CODES = CodeTable(
    retryable=frozenset(
        {
            "20429",  # too many requests
            "20500",  # internal server error
            "20503",  # service unavailable
            "21611",  # the From number has too many messages queued
            "30001",  # queue overflow
            "30003",  # destination handset unreachable (switched off, out of coverage)
            "30008",  # unknown delivery error
            "30009",  # a segment of the message went missing
            "30017",  # carrier network congestion
        }
    ),
    permanent=frozenset(
        {
            "20003",  # authentication failed
            "20005",  # the account is not active
            "20008",  # test credentials cannot create real messages
            "20404",  # resource not found: a wrong Account SID
            "21212",  # invalid From number
            "21601",  # From is not an SMS-capable number
            "21602",  # body required
            "21603",  # From (or MessagingServiceSid) required
            "21604",  # To required
            "21606",  # From is not an SMS-capable number of the account
            "21609",  # invalid StatusCallback URL
            "21617",  # body longer than 1,600 characters
            "21619",  # a body or media is required
            "21620",  # invalid media URL
            "21621",  # From is not enabled for MMS
            "21623",  # too many media files
            "21703",  # the Messaging Service has no phone number available to send
            "21704",  # the Messaging Service contains no phone numbers
            "21705",  # invalid Messaging Service
            "30002",  # the account is suspended
            "30007",  # filtered by the carrier as spam or against its rules (content)
            "30010",  # the price exceeds MaxPrice
            "30019",  # content larger than the carrier accepts
            "30032",  # toll-free number not verified
            "30034",  # US A2P 10DLC: the sender is not registered
            *UNSERVED,
        }
    ),
    refusing=frozenset(
        {
            "21265",  # To is a short code, which cannot receive
            "21266",  # To is the sender itself
            "21610",  # the recipient unsubscribed (replied STOP)
            "21635",  # To is a landline
            "30004",  # message blocked by the recipient or the carrier for this number
            "30005",  # the destination number is unknown and may no longer exist
            "30006",  # landline or a carrier that cannot take SMS
        }
    ),
    invalid=frozenset(
        {
            "21211",  # invalid To number
            "21614",  # To is not a valid mobile number
        }
    ),
)

#: Codes about one recipient: that number fails (refused, or owed elsewhere), the send goes on.
RECIPIENT_CODES = ERROR_CODES.refusing | ERROR_CODES.invalid | UNSERVED
