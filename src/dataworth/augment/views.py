"""One policy per view of a self-supervised method (a study's `{views: [[...], [...]]}` policy).

SimCLR and VICReg draw both views of an image from one distribution; BYOL's are asymmetric
(view 1 always blurred and never solarized, view 2 blurred with p 0.1 and solarized with p 0.2).
`ViewPolicies` holds one policy per view; `train/objectives.two_views` draws view i from
`views[i]`, each per image on the device from the run's augmentation generator, as for one policy.
"""

from __future__ import annotations

from dataworth.augment import build_policy


class ViewPolicies:
    """The policies of view 1 and view 2. Not a policy itself: a supervised loss, which draws one
    view per image, cannot use it (study validation rejects that before any job starts)."""

    def __init__(self, views: list):
        self.views = list(views)

    def __call__(self, x, gen):
        raise TypeError("a policy with one list of ops per view draws the two views of a self-supervised method; "
                        "a supervised run cannot train with it")

    def __repr__(self) -> str:
        return f"ViewPolicies({', '.join(map(repr, self.views))})"


def training_policy(augmentation: dict, wrap=lambda policy: policy):
    """The policy of a run's resolved `augmentation` section, each view's policy passed through
    `wrap` (the dataset's conversion to network input): a Policy, or ViewPolicies for `views`."""
    if "views" in augmentation:
        return ViewPolicies([wrap(build_policy(ops)) for ops in augmentation["views"]])
    return wrap(build_policy(augmentation["ops"]))


def map_views(policy, fn):
    """fn(policy), or, for ViewPolicies, ViewPolicies of fn(each view's policy): wrapping a policy
    (layout, conversion) keeps its views apart."""
    if isinstance(policy, ViewPolicies):
        return ViewPolicies([fn(view) for view in policy.views])
    return fn(policy)
