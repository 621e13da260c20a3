"""Statistics of bench/run's rounds and the --compare report (no I/O besides reading files).

Every row of bench/run is measured in rounds; each round measures asya and its baseline close
together (the order alternating between rounds where the section allows it) and gives one ratio
asya / baseline. The row's ratio is the median of the rounds' ratios; its spread is how far the
smallest and the largest round ratio lie from that median, in percent; a row whose spread is wider
than NOISY_PERCENT (±25 %) on either side is flagged `noisy`: its ratio cannot tell a change from
the machine's noise.
"""
import json
import statistics

NOISY_PERCENT = 25.0


def median(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values)


def round_ratio(asya, baseline):
    if asya is None or not baseline:
        return None
    return asya / baseline


def spread_percent(ratios, centre):
    """(below, above): how far min and max of `ratios` are from `centre`, in percent (≥ 0)."""
    ratios = [r for r in ratios if r is not None]
    if not ratios or not centre:
        return None
    return (max(0.0, (1.0 - min(ratios) / centre) * 100.0),
            max(0.0, (max(ratios) / centre - 1.0) * 100.0))


def summarize(rounds):
    """The row's figures from its rounds: a list of {"asya", "baseline", "load"} dicts (a round
    may carry a precomputed "ratio"). Returns asya/baseline/ratio (medians), ratio_min/ratio_max,
    spread_percent [below, above], noisy, load_average [min, max] and the rounds with their
    ratios."""
    done = []
    for r in rounds:
        ratio = r.get("ratio")
        if ratio is None:
            ratio = round_ratio(r.get("asya"), r.get("baseline"))
        done.append(dict(r, ratio=ratio))
    ratios = [r["ratio"] for r in done if r["ratio"] is not None]
    centre = median(ratios)
    spread = spread_percent(ratios, centre)
    loads = [r["load"] for r in done if r.get("load") is not None]
    return {
        "asya": median(r.get("asya") for r in done),
        "baseline": median(r.get("baseline") for r in done),
        "ratio": centre,
        "ratio_min": min(ratios) if ratios else None,
        "ratio_max": max(ratios) if ratios else None,
        "spread_percent": None if spread is None else [round(spread[0], 1), round(spread[1], 1)],
        "noisy": is_noisy(spread),
        "load_average": [min(loads), max(loads)] if loads else None,
        "rounds": done,
    }


def is_noisy(spread, limit=NOISY_PERCENT):
    """Whether a (below, above) spread is wider than ±limit %. A single round is not noisy by
    this measure (it has no spread); the table shows its round count instead."""
    if spread is None:
        return False
    return spread[0] > limit or spread[1] > limit


def row_rounds(row):
    """The rounds of a result row; an older file's row (no "rounds") is one round of its single
    value."""
    rounds = row.get("rounds")
    if isinstance(rounds, list) and rounds and all(isinstance(r, dict) for r in rounds):
        out = []
        for r in rounds:
            asya = r.get("asya")
            baseline = r.get("baseline", r.get("raw_loop"))  # rabbitmq_hop's older round fields
            out.append({"asya": asya, "baseline": baseline, "load": r.get("load"),
                        "ratio": r.get("ratio", round_ratio(asya, baseline))})
        return out
    return [{"asya": row.get("asya"), "baseline": row.get("baseline"), "load": None,
             "ratio": row.get("ratio", round_ratio(row.get("asya"), row.get("baseline")))}]


def row_summary(row):
    """summarize() of a result row, new or old."""
    summary = summarize(row_rounds(row))
    if row.get("ratio") is not None and "rounds" not in row:
        summary["ratio"] = row["ratio"]
    return summary


def fmt_ratio(value):
    return "—" if value is None else "%.2f×" % value


def fmt_spread(summary):
    """"0.91–1.10× (−9/+10 %)" or "1 round"."""
    ratios = [r["ratio"] for r in summary["rounds"] if r.get("ratio") is not None]
    if len(ratios) < 2:
        return "%d round%s" % (len(ratios), "" if len(ratios) == 1 else "s")
    below, above = summary["spread_percent"]
    return "%.2f–%.2f× (−%.0f/+%.0f %%)%s" % (summary["ratio_min"], summary["ratio_max"], below,
                                            above, " noisy" if summary["noisy"] else "")


def load_file(path):
    with open(path) as f:
        report = json.load(f)
    if not isinstance(report, dict) or not isinstance(report.get("rows"), list):
        raise ValueError("%s: not a bench/run result (no \"rows\" list)" % path)
    return report


def compare(before, after, before_file="before", after_file="after"):
    """A Markdown table of every row in either report: ratio before and after with their round
    spreads, and the change of the median ratio. Rows present on one side only say so."""
    before_name, after_name = "before", "after"
    rows_before = {r["id"]: r for r in before["rows"] if "id" in r}
    rows_after = {r["id"]: r for r in after["rows"] if "id" in r}
    order = [r["id"] for r in after["rows"] if "id" in r]
    order += [i for i in (r["id"] for r in before["rows"] if "id" in r) if i not in rows_after]
    lines = ["| row | %s ratio | %s spread | %s ratio | %s spread | change |"
             % (before_name, before_name, after_name, after_name),
             "|---|---:|---|---:|---|---|"]
    for row_id in order:
        a, b = rows_before.get(row_id), rows_after.get(row_id)
        sa = row_summary(a) if a else None
        sb = row_summary(b) if b else None
        cells = []
        for s, present in ((sa, a), (sb, b)):
            if not present:
                cells += ["—", "not in this file"]
            elif s["ratio"] is None:
                cells += ["—", "not measured"]
            else:
                cells += [fmt_ratio(s["ratio"]), fmt_spread(s)]
        change = "—"
        if sa and sb and sa["ratio"] and sb["ratio"] is not None:
            higher = (b or a).get("higher_is_better", True)
            delta = (sb["ratio"] / sa["ratio"] - 1.0) * 100.0
            better = delta > 0 if higher else delta < 0
            overlap = (sa["ratio_min"] is not None and sb["ratio_min"] is not None
                       and sb["ratio_min"] <= sa["ratio_max"] and sa["ratio_min"] <= sb["ratio_max"])
            change = "%+.0f %% (%s%s)" % (delta, "better" if better else "worse" if delta else "same",
                                          ", within the spreads" if overlap else "")
        lines.append("| %s | %s | %s | %s | %s | %s |" % (row_id, *cells, change))
    lines.append("")
    sections = section_lines(before.get("run", {}), after.get("run", {}))
    if sections:
        lines += sections + [""]
    for name, path, report in ((before_name, before_file, before), (after_name, after_file, after)):
        run = report.get("run", {})
        lines.append("%s: %s, run %s, %s round(s), load average %s before, %s after, %s s" % (
            name, path, run.get("date", "?"), run.get("rounds", 1), (run.get("load_average_before") or ["?"])[0],
            (run.get("load_average_after") or ["?"])[0], run.get("seconds", "?")))
    return "\n".join(lines)


def section_lines(before_run, after_run):
    """Seconds per section (run.section_seconds) before and after, in the after file's order;
    none when neither file recorded them (files written before they were)."""
    before, after = (run.get("section_seconds") or {} for run in (before_run, after_run))
    if not before and not after:
        return []
    order = list(after) + [name for name in before if name not in after]
    lines = ["| section | before s | after s | change |", "|---|---:|---:|---|"]
    for name in order:
        a, b = before.get(name), after.get(name)
        change = "%+.0f %%" % ((b / a - 1.0) * 100.0) if a and b is not None else "—"
        lines.append("| %s | %s | %s | %s |" % (name, "—" if a is None else "%.0f" % a,
                                               "—" if b is None else "%.0f" % b, change))
    return lines
