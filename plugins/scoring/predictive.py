"""The predictive score: a per-tenant logistic regression (scikit-learn) on the tenant's
closed deals and converted/unqualified leads, from the same facts the rules read.

The fitted model is stored as plain coefficients (standardisation means and scales,
weights, intercept) in ``scoring_model``: JSON, readable, and nothing to unpickle. Its
quality is measured on a stratified held-out quarter of the examples (ROC AUC and Brier
score) before it is refitted on all of them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from crm_plugins.scoring.models import ScoringModel
from crmcore.sdk import utcnow

log = logging.getLogger("crm_plugins.scoring")

#: How many contributing features each lead shows.
TOP_FEATURES = 3


class Model:
    """A trained model from its stored parameters: probability and explanation."""

    def __init__(self, params: dict[str, Any]):
        self.features: list[str] = params["features"]
        self.mean: list[float] = params["mean"]
        self.scale: list[float] = params["scale"]
        self.coef: list[float] = params["coef"]
        self.intercept: float = params["intercept"]

    def explain(self, x: Sequence[float]) -> tuple[float, list[dict[str, Any]]]:
        """The predicted probability of winning, and the features that moved it most
        (each one's contribution to the log-odds, relative to an average lead)."""
        from crm_plugins.scoring.engine import FEATURE_LABELS

        contributions = [c * (v - m) / s for c, v, m, s in zip(self.coef, x, self.mean, self.scale)]
        z = self.intercept + sum(contributions)
        p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
        ranked = sorted(range(len(contributions)), key=lambda i: -abs(contributions[i]))[:TOP_FEATURES]
        top = [
            {"feature": self.features[i], "label": FEATURE_LABELS.get(self.features[i], self.features[i]), "contribution": round(contributions[i], 3), "value": x[i]}
            for i in ranked
            if abs(contributions[i]) >= 0.005
        ]
        return round(p, 4), top


def load_model() -> Model | None:
    """The current tenant's usable model, or None (not trained, or too few examples)."""
    row = ScoringModel.get_or_none()
    return Model(row.params) if row is not None and row.params else None


def label_of(facts: Any) -> int | None:
    """1 for a won example, 0 for a lost one, None for a lead still open. A won or lost
    deal decides; without one, a converted lead counts as won and an unqualified one as lost."""
    if facts.won:
        return 1
    if facts.lost:
        return 0
    if facts.status == "converted":
        return 1
    if facts.status == "unqualified":
        return 0
    return None


def train(tenant: Any) -> ScoringModel:
    """Fit the tenant's model (or record why not) and store it with its quality."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from crm_plugins.scoring.engine import FEATURES, effective_settings, features_of, gather

    cfg = effective_settings(tenant)
    now = utcnow()
    xs, ys = [], []
    for facts in gather(tenant, None, cfg, now).values():
        label = label_of(facts)
        if label is not None:
            xs.append(features_of(facts, cfg, now))
            ys.append(label)
    n, positives = len(ys), sum(ys)
    minimum = cfg["min_training_examples"]
    fields: dict[str, Any] = {"trained_at": now, "examples": n, "positives": positives, "auc": None, "brier": None, "params": None}
    if n < minimum:
        fields["message"] = f"Only {n} closed example{'s' if n != 1 else ''} (won/lost deals, converted/unqualified leads); at least {minimum} are needed. Scores use the rules alone."
    elif min(positives, n - positives) < 4:
        fields["message"] = f"{positives} won and {n - positives} lost examples: at least 4 of each are needed. Scores use the rules alone."
    else:
        X, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=int)
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
        scaler = StandardScaler().fit(X_train)
        held_out = LogisticRegression(max_iter=1000).fit(scaler.transform(X_train), y_train)
        p_test = held_out.predict_proba(scaler.transform(X_test))[:, 1]
        fields["auc"] = round(float(roc_auc_score(y_test, p_test)), 4)
        fields["brier"] = round(float(brier_score_loss(y_test, p_test)), 4)
        # Refit on every example for use; the quality figures stay the held-out ones.
        scaler = StandardScaler().fit(X)
        model = LogisticRegression(max_iter=1000).fit(scaler.transform(X), y)
        fields["params"] = {
            "features": [key for key, _ in FEATURES],
            "mean": [float(v) for v in scaler.mean_],
            # A constant feature has scale 0 in theory; StandardScaler reports 1 for it.
            "scale": [float(v) or 1.0 for v in scaler.scale_],
            "coef": [float(v) for v in model.coef_[0]],
            "intercept": float(model.intercept_[0]),
        }
        fields["message"] = f"Trained on {n} examples ({positives} won); quality measured on {len(y_test)} held out."
    row = ScoringModel.get_or_none()
    if row is None:
        row = ScoringModel.create(**fields)
    else:
        ScoringModel.update(**fields).where(ScoringModel.id == row.id).execute()
        row = ScoringModel.get_by_id(row.id)
    log.info("scoring model for %s: %s", tenant.slug, fields["message"])
    return row
