"""Which variant of an experiment a user sees: deterministic, sticky, and portable.

A website may run this client in Python and a port of it in another language; both
must put every user in the same variant, so the algorithm is specified here to the
bit (auth/abclient/README.md repeats it with golden test vectors).

Weighted rendezvous (highest-random-weight) hashing. For each variant with a weight
above 0, in the order the experiment lists them:

    h     = SHA-256(UTF-8 bytes of salt + "\\n" + variant_name + "\\n" + user_id)
    x     = the first 8 bytes of h as a big-endian unsigned 64-bit integer
    u     = (double(x) + 0.5) / 2**64      in IEEE-754 double arithmetic; double(x)
                                           rounds to nearest, ties to even
    score = weight / -ln(u)                +infinity when u rounds to 1.0 (ln(u) = 0)

The variant with the highest score wins; on a tie the one listed first wins.

Why rendezvous hashing rather than cutting [0, 100) into weight-sized buckets: a
user's score for one variant depends only on that variant's name and weight, so a
user changes variant only when the change of weights makes another variant's score
overtake theirs. Writing E_i = -ln(u_i) (independent, exponentially distributed
over users), the user goes to the variant with the smallest E_i / weight_i, which
wins with probability weight_i / sum of weights. Consequences, all tested:

- Two variants: a user is in A exactly when E_B / E_A > w_B / w_A, so moving weight
  from B to A only moves users from B to A, |delta w| % of them: the minimum.
- Adding a variant while scaling the others' weights by one factor (50/50 to
  40/40/20) leaves the others' order unchanged: users move only into the new one.
  Removing a variant (or setting its weight to 0) with the same scaling moves only
  that variant's users.
- Three or more variants: a weight change moves a little more than the minimum,
  because a variant that gains weight also overtakes some users' scores for the
  variants whose weight did not change. A variant i keeps a user through a change
  w -> w' with probability 1 / (1 + sum over j != i of max(w_j / w_i, w'_j / w'_i)).
  50/25/25 -> 40/35/25 moves 12.27 % of users (measured 12.29 % over a million
  ids) where 10 % is the minimum: 7.7 % go 1 -> 2, 2.3 % go 1 -> 3 and 2.3 % go
  3 -> 2.

The salt names one run of one experiment: a new salt reshuffles everyone, so a new
experiment does not inherit the previous one's groups.
"""

import hashlib
import math
import re
from collections.abc import Mapping

# Variant names appear in gateway routes (/variants/<name>/predict), Redis keys and
# logs, so they are kept to characters that need no escaping anywhere.
VARIANT_NAME = re.compile(r"[a-z][a-z0-9-]{0,29}")
MAX_WEIGHT = 100
TOTAL_WEIGHT = 100

_TWO_TO_THE_64 = 2.0**64


def hash_user(salt: str, user_id: str) -> str:
    """The pseudonymous id of a user in one experiment: hex SHA-256 of salt + "\\n" + user_id.

    Exposure logs carry this instead of the user id, and a site logs its conversions
    with the same function, so the analysis can join the two without ever holding an
    id that leads back to a person. The salt makes the hashes of one experiment
    useless for joining with another's.
    """
    _check_text("salt", salt)
    _check_text("user_id", user_id)
    return hashlib.sha256(f"{salt}\n{user_id}".encode()).hexdigest()


def variant_score(salt: str, variant_name: str, user_id: str, weight: int) -> float:
    """The rendezvous score of one variant for one user (see the module docstring).

    Public so that a port can compare its intermediate values with this one.
    """
    digest = hashlib.sha256(f"{salt}\n{variant_name}\n{user_id}".encode()).digest()
    # Python converts the int to the nearest double (ties to even) before adding
    # 0.5 in double arithmetic, which is exactly what the specification says.
    uniform = (int.from_bytes(digest[:8], "big") + 0.5) / _TWO_TO_THE_64
    exponential = -math.log(uniform)
    # For the top 2**-54 of hashes u rounds to 1.0; the limit of the score is then
    # +infinity, and saying so keeps ports from dividing by (negative) zero.
    return math.inf if exponential == 0.0 else weight / exponential


def assign_variant(salt: str, user_id: str, weights: Mapping[str, int]) -> str:
    """The name of the variant `user_id` sees, from variant names to weights in listed order.

    The mapping's order is the experiment's order of variants; it only matters for
    ties, which need two scores equal to the last bit.
    """
    _check_text("salt", salt)
    _check_text("user_id", user_id)
    check_weights(weights)
    winner = ""
    best_score = -math.inf
    for name, weight in weights.items():
        if weight == 0:
            continue
        score = variant_score(salt, name, user_id, weight)
        if score > best_score:
            winner, best_score = name, score
    return winner


def check_variant_name(name: object) -> None:
    """Refuse a variant name that is not a string matching VARIANT_NAME."""
    if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name):
        raise ValueError(
            f"variant name must match ^{VARIANT_NAME.pattern}$ "
            f"(lowercase letters, digits and -, starting with a letter), got {name!r}"
        )


def check_weight(weight: object) -> None:
    """Refuse a weight that is not an integer from 0 to MAX_WEIGHT (bool is no integer here)."""
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_WEIGHT:
        raise ValueError(f"weight must be an integer from 0 to {MAX_WEIGHT}, got {weight!r}")


def check_weights(weights: Mapping[str, int]) -> None:
    """Refuse weights an experiment could not have published: bad names or weights, or a
    total other than TOTAL_WEIGHT (percentages keep the config readable and comparable)."""
    if not weights:
        raise ValueError("an experiment needs at least one variant")
    for name, weight in weights.items():
        check_variant_name(name)
        try:
            check_weight(weight)
        except ValueError as error:
            raise ValueError(f"variant {name!r}: {error}") from None
    total = sum(weights.values())
    if total != TOTAL_WEIGHT:
        raise ValueError(f"weights must add up to {TOTAL_WEIGHT}, they add up to {total}")


def _check_text(field: str, value: object) -> None:
    # An empty salt or id would still hash, silently putting every such user in one
    # variant; a caller passing None or an int has a bug worth hearing about.
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be a non-empty string, got {value!r}")
