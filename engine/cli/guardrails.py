"""`funnel pause|resume FUNNEL STEP`: hold an email step, or let it go on after a guardrail held it."""

from __future__ import annotations

import sys

import click

from engine.cli.main import Context, main, pass_project
from engine.cli.sample import load_plan
from engine.errors import did_you_mean
from engine.logs import log
from engine.scheduler.clock import Clock, SystemClock
from engine.sequences.plan import Plan
from engine.store import pauses

# What time these commands take it to be; tests put a FrozenClock here.
clock: Clock = SystemClock()


@main.command("resume")
@click.argument("funnel")
@click.argument("step")
@pass_project
def resume_command(obj: Context, funnel: str, step: str) -> None:
    """Resume a paused email step: everyone waiting at it goes on at the daemon's next tick."""
    plan = load_plan(obj, funnel)
    _check_step(plan, step)
    db_engine = obj.database()
    with db_engine.begin() as conn:
        woken = pauses.resume(conn, funnel, step, "cli", obj.clock(clock).now())
    if woken is None:
        click.echo(f"step '{step}' of funnel '{funnel}' is not paused; nothing to do")
        return
    log("resumed", funnel=funnel, step=step, by="cli", woken=woken)
    click.echo(f"resumed '{step}' of '{plan.funnel}': {woken} subscriber(s) waiting at it "
               "go on at the next tick")
    click.echo("its guardrails now judge only what is sent from now on")


@main.command("pause")
@click.argument("funnel")
@click.argument("step")
@click.option("--reason", default="paused by hand", show_default=True, help="What the pause history shows.")
@pass_project
def pause_command(obj: Context, funnel: str, step: str, reason: str) -> None:
    """Pause an email step by hand: who reaches it waits there until `funnel resume`."""
    plan = load_plan(obj, funnel)
    _check_step(plan, step)
    db_engine = obj.database()
    with db_engine.begin() as conn:
        paused = pauses.pause(conn, funnel, step, pauses.Breach("manual", reason),
                             obj.clock(clock).now())
        waiting = pauses.waiting_at(conn, funnel, step)
    if not paused:
        click.echo(f"step '{step}' of funnel '{funnel}' is already paused")
        return
    log("step_paused", funnel=funnel, step=step, metric="manual", detail=reason, waiting=waiting)
    click.echo(f"paused '{step}' of '{funnel}'; {waiting} subscriber(s) wait at it now. "
               f"Resume with: funnel resume {funnel} {step}")


def _check_step(plan: Plan, step: str) -> None:
    email = plan.email(step)
    if email is not None and email.marketing:
        return
    marketing = [e.id for e in plan.emails() if e.marketing]
    why = "is a confirmation, magnet or survey email, which is never held back" if email else "is not in it"
    hint = did_you_mean(step, marketing, "run funnel stats to see its steps")
    click.echo(f"step '{step}' of funnel '{plan.funnel}' {why}; {hint}", err=True)
    sys.exit(1)
