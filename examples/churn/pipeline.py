"""The churn pipeline, the demo of mlstack on any stack.

ingest -> features -> train (one branch per C, in parallel) -> evaluate

- ``ingest`` loads the sample dataset into the warehouse (table ``churn_customers``) when it is missing;
- ``features`` reads it through ``mlstack.data`` (recorded in the run's lineage) and writes ``churn_features``;
- ``train`` fits a scikit-learn logistic regression per value of ``C`` and saves each as a version of the
  artifact ``churn-model`` (metrics in its metadata, the run and the tables read in its lineage);
- ``evaluate`` picks the best version and moves the ``production`` alias to it only when its AUC passes
  ``threshold``.

Run it: ``mlstack run examples/churn --local -p threshold=0.8``; render it: ``mlstack render examples/churn --argo``
(the WorkflowTemplate and, for its nightly schedule, a CronWorkflow); schedule it on a stack with Argo:
``mlstack schedule examples/churn``.
"""

from __future__ import annotations

from typing import Any

from mlstack import Pipeline

MODEL = "churn-model"
FEATURES = "churn_features"

pipeline = Pipeline(
    "churn",
    params={"rows": 5000, "seed": 7, "reload": False, "C": [0.05, 0.5, 5.0], "threshold": 0.75},
    description="Churn model: sample data -> features -> parallel training -> gated promotion",
    # nightly at 03:00 UTC once applied to a stack with Argo (`mlstack schedule examples/churn`)
    schedule="0 3 * * *",
)


@pipeline.step(cpu=1, memory="1Gi")
def ingest(rows: int, seed: int, reload: bool) -> dict[str, Any]:
    """Load the deterministic sample dataset into the warehouse unless it is already there."""
    from sample import TABLE, generate

    import mlstack.data as data

    existing = {t.name for t in data.tables()}
    if TABLE in existing and not reload:
        return {"table": TABLE, "loaded": 0}
    df = generate(rows, seed)
    data.write(TABLE, df, mode="overwrite")
    return {"table": TABLE, "loaded": len(df)}


@pipeline.step(cpu=1, memory="2Gi", after=[ingest])
def features() -> dict[str, Any]:
    """One-hot categories and ratios, written as a table the training branches share."""
    from sample import TABLE

    import mlstack.data as data

    df = data.read_pandas(TABLE)
    out = df[["customer_id", "tenure_months", "monthly_charges", "support_calls"]].copy()
    out["charges_per_tenure"] = df["monthly_charges"] / df["tenure_months"].clip(lower=1)
    for col in ("contract", "internet"):
        for value in sorted(df[col].unique()):
            out[f"{col}_{value}".replace("-", "_")] = (df[col] == value).astype("int64")
    out["paperless_billing"] = df["paperless_billing"].astype("int64")
    out["churned"] = df["churned"].astype("int64")
    data.write(FEATURES, out, mode="overwrite")
    return {"table": FEATURES, "rows": len(out), "columns": len(out.columns) - 2}


@pipeline.step(cpu=1, memory="2Gi", foreach="C")
def train(features: dict[str, Any], C: float, seed: int) -> dict[str, Any]:
    """Fit one model (one branch per C) and save it as a version of the model artifact."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import mlstack.artifacts as artifacts
    import mlstack.data as data

    df = data.read_pandas(features["table"])
    y = df.pop("churned").to_numpy()
    X = df.drop(columns=["customer_id"]).to_numpy(dtype="float64")
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=500))
    model.fit(X_tr, y_tr)
    auc = float(roc_auc_score(y_te, model.predict_proba(X_te)[:, 1]))
    v = artifacts.put(
        MODEL, model, pickle=True, metadata={"C": C, "auc": round(auc, 6), "framework": "sklearn"}
    )
    return {"C": C, "auc": auc, "version": v.version}


@pipeline.step(cpu=0.5, memory="512Mi")
def evaluate(train: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Pick the best branch; move ``production`` to it only when its AUC passes the threshold."""
    import mlstack.artifacts as artifacts
    import mlstack.card as card

    best = max(train, key=lambda r: r["auc"])
    promoted = best["auc"] >= threshold
    # the run report (`mlstack runs show RUN --html report.html`) shows this card under the step
    card.markdown(
        f"## Model selection\nBest of {len(train)}: `C={best['C']}`, AUC **{best['auc']:.4f}** "
        f"(threshold {threshold}): production {'moves to' if promoted else 'stays; not moved to'} "
        f"version {best['version']}."
    )
    card.table(
        [{"C": r["C"], "auc": round(r["auc"], 4), "version": r["version"]} for r in train], title="candidates"
    )
    # the gate: the run's record and summary say whether production moved, and why
    artifacts.promote(
        MODEL,
        best["version"],
        "production",
        when=promoted,
        reason=f"AUC {best['auc']:.3f} {'>=' if promoted else '<'} threshold {threshold}",
    )
    return {
        "model": MODEL,
        "version": best["version"],
        "C": best["C"],
        "auc": best["auc"],
        "threshold": threshold,
        "promoted": promoted,
        "candidates": len(train),
    }
