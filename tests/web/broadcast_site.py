"""A project with broadcasts for the web tests of /api/broadcasts and the dashboard's broadcast pages."""

from __future__ import annotations

from pathlib import Path

from tests.support.project import minimal_project


def broadcast_project(folder: Path) -> Path:
    """The minimal funnel with three broadcasts: 'digest' (education, Friday 6 March 2026 at 09:00 each
    recipient's local time), 'flash' (a sale, Wednesday 4 March 09:30 UTC) and 'old' (1 March: past)."""
    project = minimal_project(folder)
    (project / "templates" / "t" / "news.html").write_text(
        (project / "templates" / "t" / "e1.html").read_text().replace("this is e1", "here is the news")
    )
    for broadcast_id, at, role in (("digest", "2026-03-06 09:00", "education"),
                                   ("flash", "2026-03-04T09:30:00Z", "sale"),
                                   ("old", "2026-03-01T09:00:00Z", "education")):
        folder = project / "broadcasts"
        folder.mkdir(exist_ok=True)
        (folder / f"{broadcast_id}.yaml").write_text(
            f"broadcast: {broadcast_id}\nname: The {broadcast_id}\nfunnel: minimal\nemail:\n"
            "  subject: News for {{ subscriber.first_name }}\n"
            f"  template: t/news.html\n  role: {role}\naudience:\n  signed_up_after: 2026-01-01\n"
            f'send:\n  at: "{at}"\n'
        )
    return project
