"""The blessing rule: a model is pushed only if it is accurate, calibrated and can tell
"no digit", and is no worse than the last blessed model on any of the three.

The default gates apply to the main eval split; gates for other eval splits (e.g. the user's
real crops in ``real``) are named by split, and a model must clear every split's gates."""
import dataclasses
import json
from typing import Dict, List, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Gates:
    min_accuracy: float = 0.80
    max_ece: float = 0.05
    min_no_digit_auroc: float = 0.95
    # How much worse than the baseline (the latest blessed model) each metric may be.
    max_accuracy_drop: float = 0.01
    max_ece_rise: float = 0.01
    max_auroc_drop: float = 0.01


# Every gate open: what a split's gates start from, so naming one split gate checks only that.
OPEN_GATES = Gates(min_accuracy=0.0, max_ece=1.0, min_no_digit_auroc=0.0, max_accuracy_drop=1.0,
                   max_ece_rise=1.0, max_auroc_drop=1.0)


def split_gates_json(split_gates: Dict[str, Gates]) -> str:
    """The evaluator's ``split_gates`` parameter (TFX parameters are plain values)."""
    return json.dumps({split: dataclasses.asdict(g) for split, g in sorted(split_gates.items())})


def parse_split_gates(text: str) -> Dict[str, Gates]:
    """``{"real": {"min_accuracy": 0.9, "max_ece": 0.05}}`` -> {split: Gates}; a gate left
    out is open. Unknown gate names are an error, not a silently ignored typo."""
    if not text:
        return {}
    parsed = json.loads(text)
    names = {f.name for f in dataclasses.fields(Gates)}
    gates = {}
    for split, values in parsed.items():
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"split {split!r}: unknown gate(s) {sorted(unknown)}; "
                             f"gates are {sorted(names)}")
        gates[split] = dataclasses.replace(OPEN_GATES, **{k: float(v) for k, v in values.items()})
    return gates


def blessing_decision(candidate: dict, baseline: Optional[dict],
                      gates: Gates) -> Tuple[bool, List[str]]:
    """Returns (blessed, failures): every gate that failed, in words a person can act on.

    ``candidate`` / ``baseline`` hold ``accuracy``, ``ece`` and ``no_digit_auroc``.
    """
    failures = []
    accuracy, ece, auroc = candidate["accuracy"], candidate["ece"], candidate["no_digit_auroc"]
    if accuracy < gates.min_accuracy:
        failures.append(f"accuracy {accuracy:.4f} is below the threshold "
                        f"{gates.min_accuracy:.4f}")
    if ece > gates.max_ece:
        failures.append(f"ECE {ece:.4f} is above the threshold {gates.max_ece:.4f}")
    if auroc is None and gates.min_no_digit_auroc > 0:
        failures.append("no-digit AUROC is undefined: the eval split needs both digit and "
                        "no-digit (label 10) examples")
    elif auroc is not None and auroc < gates.min_no_digit_auroc:
        failures.append(f"no-digit AUROC {auroc:.4f} is below the threshold "
                        f"{gates.min_no_digit_auroc:.4f}")
    if baseline is not None:
        if accuracy < baseline["accuracy"] - gates.max_accuracy_drop:
            failures.append(f"accuracy {accuracy:.4f} regresses from the blessed baseline's "
                            f"{baseline['accuracy']:.4f} by more than "
                            f"{gates.max_accuracy_drop:.4f}")
        if ece > baseline["ece"] + gates.max_ece_rise:
            failures.append(f"ECE {ece:.4f} is worse than the blessed baseline's "
                            f"{baseline['ece']:.4f} by more than {gates.max_ece_rise:.4f}")
        if auroc is not None and baseline["no_digit_auroc"] is not None and \
                auroc < baseline["no_digit_auroc"] - gates.max_auroc_drop:
            failures.append(f"no-digit AUROC {auroc:.4f} regresses from the blessed "
                            f"baseline's {baseline['no_digit_auroc']:.4f} by more than "
                            f"{gates.max_auroc_drop:.4f}")
    return not failures, failures
