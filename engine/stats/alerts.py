"""The alert webhook: a JSON POST to the operator's URL when a guardrail pauses a step.

The body carries a `text` line, so a Slack or Mattermost incoming webhook shows it as is,
and every field for a program. Sent from a worker thread with a short timeout; a failed
alert is logged and never stops the pause itself.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from engine.logs import log

TIMEOUT_SECONDS = 5.0


def post_alert(url: str, payload: Mapping[str, Any], timeout: float = TIMEOUT_SECONDS) -> bool:
    """POST `payload` as JSON to `url`; True on a 2xx answer."""
    body = json.dumps(payload, default=str).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "funnel-engine alerts"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status = int(answer.status)
    except urllib.error.HTTPError as error:
        status = error.code
    except (OSError, ValueError) as error:
        log("alert_failed", logging.WARNING, url=_shown(url), error=f"{type(error).__name__}: {error}"[:300])
        return False
    if not 200 <= status < 300:
        log("alert_failed", logging.WARNING, url=_shown(url), status=status)
        return False
    log("alert_sent", url=_shown(url), event=payload.get("event"))
    return True


def _shown(url: str) -> str:
    """The URL without its path: webhook paths are secrets (Slack's are)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].rpartition('@')[2]}/…"
