"""Postmark's documented error codes and HTTP statuses, classified (DESIGN §3)."""

from __future__ import annotations

from gocomm.httpvendor import CodeTable

__all__ = ["ERROR_CODES", "STATUS_CODES"]

#: Postmark's documented API error codes (``ErrorCode``), classified. The management API's codes
#: (servers, domains, sender signatures, bounces, inbound rules, message streams) cannot answer a
#: send; they are listed as permanent so that every documented code is classified.
ERROR_CODES = CodeTable(
    permanent=frozenset(
        {
            "10",  # bad or missing server token
            "300",  # invalid email request (a field Postmark's validation refused)
            "400",  # no sender signature for the From address
            "401",  # the sender signature is not confirmed
            "402",  # invalid JSON
            "403",  # incompatible JSON (fields Postmark does not expect)
            "405",  # not allowed to send (the account has run out of credits)
            "409",  # JSON required (Accept / Content-Type)
            "410",  # more than 500 messages in a batch
            "411",  # forbidden attachment type
            "412",  # the account is pending approval
            "413",  # the account may not send
            # sender signatures and domains (management API)
            *[
                "500",
                "501",
                "502",
                "503",
                "504",
                "505",
                "506",
                "507",
                "510",
                "511",
                "512",
                "513",
                "514",
                "515",
                "516",
                "520",
                "521",
                "522",
            ],
            # servers, messages, inbound rules, stats, bounces (management API)
            *[
                "600",
                "601",
                "602",
                "603",
                "604",
                "605",
                "606",
                "607",
                "608",
                "609",
                "610",
                "611",
                "700",
                "701",
                "702",
                "703",
            ],
            *["800", "809", "810", "811", "812", "813", "900", "1000", "1001", "1002", "1003"],
            # templates: 1101 no such template, 1109/1120-1123 the model or fields
            *[
                "1100",
                "1101",
                "1105",
                "1109",
                "1120",
                "1121",
                "1122",
                "1123",
                "1125",
                "1130",
                "1131",
                "1132",
                "1134",
            ],
            # message streams: 1235 no such stream, 1236 cannot send on it
            *[
                "1221",
                "1222",
                "1223",
                "1224",
                "1225",
                "1226",
                "1227",
                "1228",
                "1229",
                "1230",
                "1231",
                "1232",
                "1233",
                "1234",
            ],
            *["1235", "1236", "1237"],
        }
    ),
    retryable=frozenset({"100", "429"}),  # maintenance; rate limit exceeded
    refusing=frozenset({"406"}),  # inactive recipient: bounced, complained or suppressed
)

#: HTTP statuses Postmark documents, for an answer without an ``ErrorCode``.
STATUS_CODES = CodeTable(
    permanent=frozenset({"HTTP401", "HTTP404", "HTTP413", "HTTP415", "HTTP422"}),
    retryable=frozenset({"HTTP429", "HTTP500", "HTTP503"}),
)
