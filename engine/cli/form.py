"""`funnel form`: a signup form for one funnel, as HTML to paste into a website.

The form posts to the daemon's `POST /subscribe` like any browser form, so it works
without JavaScript: the daemon answers with a 303 to the funnel's thank-you page. It
shows the consent sentence the daemon keeps with each signup (`Plan.consent_wording`),
so what the person read and what is recorded are the same words.
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlsplit

import click

from engine.cli.main import Context, main, pass_project
from engine.cli.sample import load_plan
from engine.errors import EngineError, did_you_mean
from engine.sequences.plan import Plan
from engine.web.signup_form import HONEYPOT, TEXT_FIELDS

# Off-screen rather than display:none: some form-filling bots skip fields that are not displayed.
_OFF_SCREEN = "position:absolute;left:-10000px;top:auto;width:1px;height:1px;overflow:hidden"


@main.command("form")
@click.argument("funnel")
@click.option("--magnet", metavar="ID",
              help="The lead magnet the form offers (default: the funnel's default).")
@click.option("--action", metavar="URL",
              help="Where the form posts (default: base_url + /subscribe, from the settings).")
@pass_project
def form(obj: Context, funnel: str, magnet: str | None, action: str | None) -> None:
    """Print an HTML signup form for a funnel, to paste into a web page."""
    plan = load_plan(obj, funnel)
    if magnet is not None and magnet not in {m.id for m in plan.magnets}:
        known = [m.id for m in plan.magnets]
        raise click.BadParameter(
            f"funnel '{plan.funnel}' has no lead magnet '{magnet}'; "
            + did_you_mean(magnet, known, "its magnets are: " + ", ".join(known)),
            param_hint="--magnet")
    if action is None:
        try:
            base_url, default = obj.settings.links_url, obj.settings.base_url is None
        except EngineError as error:
            raise click.ClickException(str(error)) from error
        action = base_url.rstrip("/") + "/subscribe"
        if default:
            click.echo(f"note: the form posts to {action}, the default base_url, which only this "
                       "machine can reach; set base_url in funnel.toml (or FUNNEL_BASE_URL) to the "
                       "daemon's public address, or pass --action", err=True)
    else:
        parts = urlsplit(action)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise click.BadParameter(f"'{action}' is not a web address; write one like "
                                     "https://mail.example.com/subscribe", param_hint="--action")
    click.echo(render_form(plan, magnet, action), nl=False)


def render_form(plan: Plan, magnet: str | None, action: str) -> str:
    """The form's HTML: every value from the sequence file or the command line escaped."""
    chosen = plan.magnet(magnet)
    # The magnet is always named, even the default one: if the funnel's default changes
    # later, this form still delivers (and records consent to) the magnet it shows.
    prefix = f"funnel-{plan.funnel}-{chosen.id}"  # unique ids with several forms on one page
    # The first name, asked for as such: templates greet with it, and no name order is guessed.
    name_length = TEXT_FIELDS["first_name"][0]
    e = escape
    return f"""\
<!-- Signup form for funnel '{e(plan.funnel)}', made by `funnel form`. -->
<form method="post" action="{e(action)}" accept-charset="UTF-8">
  <input type="hidden" name="funnel" value="{e(plan.funnel)}">
  <input type="hidden" name="magnet" value="{e(chosen.id)}">
  <p>
    <label for="{e(prefix)}-email">Email</label>
    <input type="email" id="{e(prefix)}-email" name="email" required autocomplete="email" maxlength="254">
  </p>
  <p>
    <label for="{e(prefix)}-first-name">First name (optional)</label>
    <input type="text" id="{e(prefix)}-first-name" name="first_name" autocomplete="given-name" \
maxlength="{name_length}">
  </p>
  <div style="{_OFF_SCREEN}" aria-hidden="true">
    <label for="{e(prefix)}-{HONEYPOT}">Leave this empty</label>
    <input type="text" id="{e(prefix)}-{HONEYPOT}" name="{HONEYPOT}"
           tabindex="-1" autocomplete="off" aria-hidden="true">
  </div>
  <p>
    <button type="submit">Sign up</button>
    <small>{e(plan.consent_wording(chosen.id))}</small>
  </p>
</form>
"""
