"""Pre-built sample emails for the send benchmarks: ~6 KB multipart/alternative, one per recipient."""

from __future__ import annotations

import binascii
import hashlib

Envelope = tuple[str, str, bytes]  # (MAIL FROM, RCPT TO, message bytes with CRLF lines)

SENDER = "news@shop.example"
_DATE = "Mon, 23 Nov 2026 12:00:00 +0000"  # fixed: the same n always gives the same bytes

_TEXT = """Hi {name},

Day 3 of the course: the one habit that saves our readers two hours a week.

Most people plan their week on Monday morning, when the inbox is already
full. The readers who stuck with it for a month did the opposite: ten
minutes on Friday afternoon, three priorities written down, calendar
blocked before anyone else can book it.

Here is the worksheet we use ourselves:
https://shop.example/c/{token}/worksheet

Three things to try this week:

1. Pick the one task that would make the week a success, and block two
   hours for it before Tuesday.
2. Batch email into two windows a day (we use 11:00 and 16:00) and close
   the tab in between.
3. Say no to one recurring meeting. Offer a written update instead.

What one reader wrote back last week:

  "I was sceptical about the Friday planning, but after three weeks my
  Mondays start with the important work instead of the inbox. The
  worksheet is now pinned above my desk." (Maria, team lead, Hamburg)

Tomorrow: how to get through a backlog of 300 unread emails in an hour,
without declaring bankruptcy.

P.S. The full course has 7 lessons and a bonus on meetings; you are on
lesson 3. If a lesson arrives at a bad time, change the send time here:
https://shop.example/p/{token}/preferences

Reply to this email if you have a question; a person reads every reply.

Ada
Example Shop

--
You get this because you signed up at shop.example on 2 November.
Unsubscribe in one click: https://shop.example/u/{token}
Example Shop, 1 Sample Street, 10115 Berlin
"""

_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Day 3: the one habit</title></head>
<body style="margin:0;padding:0;background:#f4f4f5;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f4f5;">
<tr><td align="center" style="padding:24px 12px;">
<table role="presentation" width="600" cellpadding="0" cellspacing="0" style="background:#ffffff;\
border-radius:8px;font-family:Helvetica,Arial,sans-serif;color:#18181b;">
<tr><td style="padding:32px 40px 8px 40px;font-size:22px;font-weight:bold;">Hi {name},</td></tr>
<tr><td style="padding:8px 40px;font-size:16px;line-height:24px;">Day 3 of the course: \
<strong>the one habit that saves our readers two hours a week.</strong></td></tr>
<tr><td style="padding:8px 40px;font-size:16px;line-height:24px;">Most people plan their week on \
Monday morning, when the inbox is already full. The readers who stuck with it for a month did the \
opposite: ten minutes on Friday afternoon, three priorities written down, calendar blocked before \
anyone else can book it.</td></tr>
<tr><td align="center" style="padding:16px 40px;"><a href="https://shop.example/c/{token}/worksheet" \
style="display:inline-block;background:#2563eb;color:#ffffff;text-decoration:none;padding:12px 24px;\
border-radius:6px;font-size:16px;font-weight:bold;">Get the worksheet</a></td></tr>
<tr><td style="padding:8px 40px;font-size:16px;line-height:24px;">Three things to try this week:
<ol style="padding-left:20px;margin:8px 0;">
<li style="margin-bottom:8px;">Pick the one task that would make the week a success, and block two \
hours for it before Tuesday.</li>
<li style="margin-bottom:8px;">Batch email into two windows a day (we use 11:00 and 16:00) and close \
the tab in between.</li>
<li style="margin-bottom:8px;">Say no to one recurring meeting. Offer a written update instead.</li>
</ol></td></tr>
<tr><td style="padding:8px 40px;font-size:16px;line-height:24px;">What one reader wrote back last week:
<blockquote style="margin:12px 0;padding:12px 16px;border-left:4px solid #2563eb;background:#eff6ff;\
font-style:italic;">I was sceptical about the Friday planning, but after three weeks my Mondays start \
with the important work instead of the inbox. The worksheet is now pinned above my desk.<br>\
<span style="font-style:normal;color:#52525b;">Maria, team lead, Hamburg</span></blockquote></td></tr>
<tr><td style="padding:8px 40px;font-size:16px;line-height:24px;">Tomorrow: how to get through a \
backlog of 300 unread emails in an hour, without declaring bankruptcy.</td></tr>
<tr><td style="padding:8px 40px;font-size:14px;line-height:21px;color:#52525b;">P.S. The full course \
has 7 lessons and a bonus on meetings; you are on lesson 3. If a lesson arrives at a bad time, \
<a href="https://shop.example/p/{token}/preferences" style="color:#2563eb;">change the send time</a>.\
</td></tr>
<tr><td style="padding:8px 40px 32px 40px;font-size:16px;line-height:24px;">Reply to this email if \
you have a question; a person reads every reply.<br><br>Ada<br>Example Shop</td></tr>
</table>
<table role="presentation" width="600" cellpadding="0" cellspacing="0">
<tr><td style="padding:16px 40px;font-family:Helvetica,Arial,sans-serif;font-size:12px;\
line-height:18px;color:#71717a;">You get this because you signed up at shop.example on 2 November.<br>
<a href="https://shop.example/u/{token}" style="color:#71717a;">Unsubscribe in one click</a>
&middot; Example Shop, 1 Sample Street, 10115 Berlin</td></tr>
</table>
<img src="https://shop.example/o/{token}.gif" width="1" height="1" alt="" style="display:block;">
</td></tr></table>
</body></html>
"""


def build_sample_messages(n: int) -> list[Envelope]:
    """`n` envelopes to distinct recipients, each a ~6 KB text+HTML email shaped like engine output."""
    return [_envelope(index) for index in range(n)]


def _envelope(index: int) -> Envelope:
    token = hashlib.sha256(f"bench-{index}".encode()).hexdigest()[:32]
    name = f"Reader {index}"
    address = f"reader{index}@inbox.example"
    message_id = f"{token[:20]}.{index}@shop.example"
    # The engine's layout (engine/mail/message.py): text then HTML, both quoted-printable UTF-8,
    # and a boundary starting with "=_", which quoted-printable output cannot contain.
    boundary = "=_" + token[:24]
    head = (
        f"Date: {_DATE}\r\n"
        "From: Ada at Example Shop <news@shop.example>\r\n"
        f"To: {name} <{address}>\r\n"
        "Subject: Day 3: the one habit that saves you two hours a week\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "MIME-Version: 1.0\r\n"
        f"List-Unsubscribe: <https://shop.example/u/{token}>\r\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
    )
    delimiter = f"--{boundary}\r\n"
    body = (
        f"{delimiter}{_part('text/plain', _TEXT.format(name=name, token=token))}\r\n"
        f"{delimiter}{_part('text/html', _HTML.format(name=name, token=token))}\r\n"
        f"--{boundary}--\r\n"
    )
    return SENDER, address, (head + body).encode("ascii")


def _part(content_type: str, content: str) -> str:
    encoded = binascii.b2a_qp(content.encode("utf-8"), istext=True).decode("ascii")
    return (
        f"Content-Type: {content_type}; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n" + encoded.replace("\n", "\r\n")
    )
