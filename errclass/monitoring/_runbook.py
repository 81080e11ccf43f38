"""alerts/RUNBOOK.md: one section per alert, headed by the alert's name without the
prefix, so ``runbook_url``'s default ``#{rule_lower}`` anchor exists for any prefix."""

from __future__ import annotations

from ._config import Config
from ._queries import num
from ._rules import alerts, rule_name


def _sections(cfg: Config) -> dict[str, str]:
    errors = " + ".join(f"`{r}`" for r in cfg.error_reasons if cfg.has(r))
    excluded = ", ".join(f"`{r}`" for r in cfg.excluded_reasons) or "nothing"
    pages = ", ".join(f"{b.long}/{b.short}" for b in cfg.burn_rates if b.severity == "critical")
    tickets = ", ".join(f"{b.long}/{b.short}" for b in cfg.burn_rates if b.severity != "critical")
    c = cfg.consumer
    return {
        "ErrorBudgetBurn": (
            f"**What**: the share of failed streams ({errors}; {excluded} excluded from both "
            "sides) over a long and a short window both exceed a burn-rate factor of the error "
            f"budget, and the long window holds at least {cfg.alerts.min_events} failed "
            f"outcomes. `severity=critical` ({pages}) pages; `severity=warning` ({tickets}) is "
            "a ticket. The `long`/`short` labels say which pair fired.\n\n"
            "**Check**: the dashboard's *Error ratio* and *Outcomes per instance* panels: one "
            "instance or all? Then the producer's WARNING logs (errclass logs faults at "
            "WARNING with the exception type) for the failing storage, disk or upstream.\n\n"
            "**Act**: fix or roll back the faulty dependency; the alert clears when the short "
            "window recovers."
        ),
        "DeadlineExceededHigh": (
            "**What**: more than the threshold of counted streams ended on their deadline.\n\n"
            "**Check**: latency of the storage or upstream the producer reads from, saturation "
            "(CPU, connection pools), and whether the deadline itself changed. Deadlines also "
            "burn the error budget, so a page may accompany this alert."
        ),
        "ClientGoneHigh": (
            "**What**: most streams end with the client gone. A symptom, not a server fault: "
            "it is excluded from the error budget, which is why no page fires.\n\n"
            "**Check**: a consumer cancelling in-flight siblings when one fetch fails (a cancel "
            "cascade: errgroup/TaskGroup semantics; use errclass's fan-out helpers, and see "
            "*FanoutCancelsOwnFetches*), proxy timeouts (nginx `proxy_read_timeout`, "
            "`proxy_ignore_client_abort`), load balancer idle timeouts, client-side deadlines, "
            "or network trouble between the two.\n\n"
            "**Act**: fix the consumer or the proxy. If a cancellation really is your fault "
            "for your service, render with `excluded_reasons = []` and `client_gone` in "
            "`error_reasons`."
        ),
        "OutcomesAbsent": (
            f"**What**: a {', '.join(cfg.aggregation_labels)} that had series of `{cfg.metric}` "
            f"within the last {cfg.alerts.absent.lookback} has none now (its labels name it), "
            "or the metric has no series at all (no labels): the alerts above are blind to "
            "it.\n\n"
            "**Check**: are the producers running and scraped (`up{job=...}`)? Was the metric "
            "renamed, or the errclass instrumentation removed? Is the selector in the render "
            "config still right?"
        ),
        "FanoutCancelsOwnFetches": (
            f"**What**: more than {num(c.cancelled.threshold * 100)}% of a fan-out's fetches "
            f"(`{c.metric}`) were cancelled by the consumer itself (`{c.cancelled_label}="
            '"true"`) over the last '
            f"{c.cancelled.window}. The producers see each of them as `client_gone`.\n\n"
            "**Check**: the dashboard's *Fan-out* panels: do self-cancelled fetches follow "
            "failed ones (one failure cancels its siblings: errgroup/TaskGroup semantics)? "
            "Are the fan-out's per-fetch timeouts shorter than the upstream's latency?\n\n"
            "**Act**: let siblings finish (errclass's fan-out helpers collect every result "
            "instead of cancelling), or lengthen the timeouts."
        ),
    }


def runbook(cfg: Config) -> str:
    sections = _sections(cfg)
    out = [
        f"# {cfg.name} alerts: runbook\n",
        "Rendered by `errclass render` (see the errclass README). Each alert's `runbook_url` "
        "points at its section below, headed by the alert's name without the prefix "
        f"`{cfg.alerts.prefix}`. Outcomes are classified into `ok`, `client_gone` (the "
        "client went away), `deadline_exceeded` and `write_failed` (a server-side fault).\n",
    ]
    for name in dict.fromkeys(rule_name(cfg, a.name) for a in alerts(cfg)):
        out.append(f"## {name}\n\n*{cfg.alerts.prefix}{name}*\n\n{sections[name]}\n")
    out.append(
        "## Low-traffic guard\n\n"
        f"Every alert needs at least `alerts.min_events` ({cfg.alerts.min_events}) outcomes "
        "of its reasons in its (long) window: failed outcomes for the burn rates, deadlines "
        "for the deadline alert. One failure at three requests a minute never pages, however "
        "high the ratio it makes; a total outage at the seed's 82 counted outcomes an hour "
        "pages one evaluation after the SRE workbook's 52 s. It counts events, not a rate, "
        "so it does not under-read while a long window fills.\n"
    )
    return "\n".join(out)
