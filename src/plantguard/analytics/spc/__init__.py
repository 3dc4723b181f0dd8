"""Statistical process control: streaming control charts, Nelson rules, capability indices, and a vectorised bank.

    charts.py      IndividualsMR, XbarR, XbarS, EWMA, CUSUM (one reading at a time; phase I then phase II)
    limits.py      phase I fits: fit_individuals, fit_xbar_r, fit_xbar_s -> Limits
    rules.py       Nelson rules 1-8 (Western Electric as a subset) -> Violation events
    process_capability.py  Cp, Cpk, Pp, Ppk, Cpm with confidence intervals
    bank.py        SpcBank: I-MR + EWMA + CUSUM + rules for many series, one numpy operation per round
    constants.py   c4, d2, d3 and the A2, A3, B3, B4, D3, D4 factors

See docs/analytics/spc.md.
"""

from plantguard.analytics.spc.bank import CHARTS, SlotSettings, SlotState, SpcBank, SpcBatchResult
from plantguard.analytics.spc.process_capability import Interval, ProcessCapability, capability, cp_interval, cpk_interval
from plantguard.analytics.spc.charts import CUSUM, EWMA, STATES, IndividualsMR, SpcResult, XbarR, XbarS
from plantguard.analytics.spc.constants import factors
from plantguard.analytics.spc.limits import Limits, fit_individuals, fit_xbar_r, fit_xbar_s
from plantguard.analytics.spc.rules import RULE_NAMES, NelsonRules, RuleSet, Violation

__all__ = ["CHARTS", "CUSUM", "EWMA", "RULE_NAMES", "STATES", "IndividualsMR", "Interval", "ProcessCapability", "Limits",
           "NelsonRules", "RuleSet", "SlotSettings", "SlotState", "SpcBank", "SpcBatchResult", "SpcResult",
           "Violation", "XbarR", "XbarS", "capability", "cp_interval", "cpk_interval", "factors", "fit_individuals",
           "fit_xbar_r", "fit_xbar_s"]
