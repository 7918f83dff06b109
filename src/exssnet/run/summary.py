"""Plain-text summary of a results dict: the accuracy matrix and the headline metrics."""

from __future__ import annotations


def format_summary(results: dict, warnings_shown: bool = False) -> str:
    """The summary lines; `warnings_shown`: the run already printed its warnings, so they are counted, not repeated."""
    acc = results["acc_matrix"]
    n = len(acc)
    lines = [
        f"{results['method']} on {results['benchmark']} (model {results['model']}, density {results['density']}, seed {results['seed']})",
        "accuracy matrix (row: after learning task i; column: task j), percent"
        + (", on the VALIDATION split:" if results.get("config", {}).get("eval_split") == "val" else ":"),
        "        " + " ".join(f"{'T' + str(j):>7}" for j in range(n)),
    ]
    for i, row in enumerate(acc):
        cells = " ".join(f"{v:7.2f}" if v is not None else f"{'':>7}" for v in row)
        lines.append(f"after {i:<2}{cells}")
    lines.append(f"average accuracy: {results['avg_acc']:.2f}")
    lines.append(f"forgetting:       {results['forgetting']:.2f}")
    if results.get("sparse_overlap") is not None:
        lines.append("sparse overlap:   " + " ".join(f"{v:.3f}" for v in results["sparse_overlap"]))
    if results.get("class_il"):
        c = results["class_il"]
        lines.append(f"class-IL ({c.get('rule', 'one-shot')}, {c['mode']}, BN {c['bn']}): "
                     f"task-inference accuracy {c['avg_task_inference_acc']:.2f}, "
                     f"inferred-task accuracy {c['avg_inferred_acc']:.2f} (task given {c['avg_task_given_acc']:.2f})")
    lines.append("task time (s):    " + " ".join(f"{s:.1f}" for s in results["task_time_s"]))
    warnings = results.get("warnings") or []
    if warnings and warnings_shown:
        lines.append(f"{len(warnings)} warning(s) printed above (also in results.json)")
    else:
        lines.extend(f"warning: {w}" for w in warnings)
    return "\n".join(lines)
