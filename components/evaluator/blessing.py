"""The blessing rule: a model is pushed only if it is accurate, calibrated and can tell
"no digit", and is no worse than the last blessed model on any of the three."""
import dataclasses
from typing import List, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Gates:
    min_accuracy: float = 0.80
    max_ece: float = 0.05
    min_no_digit_auroc: float = 0.95
    # How much worse than the baseline (the latest blessed model) each metric may be.
    max_accuracy_drop: float = 0.01
    max_ece_rise: float = 0.01
    max_auroc_drop: float = 0.01


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
    if auroc is None:
        failures.append("no-digit AUROC is undefined: the eval split needs both digit and "
                        "no-digit (label 10) examples")
    elif auroc < gates.min_no_digit_auroc:
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
