"""Pre-connection assessment (`plantguard assess`): probe every configured connector read-only and report, per
device link, whether it is reachable, what reads, how fast it answers and whether the planned polling fits."""

from plantguard.assess.report import render_html, render_markdown
from plantguard.assess.runner import (ATTENTION, COMPATIBLE, NOT_ASSESSABLE, UNREACHABLE, Assessment, LinkAssessment,
                                      Skipped, assess, judge, load_connectors, probe_all)

__all__ = ["ATTENTION", "COMPATIBLE", "NOT_ASSESSABLE", "UNREACHABLE", "Assessment", "LinkAssessment", "Skipped",
           "assess", "judge", "load_connectors", "probe_all", "render_html", "render_markdown"]
