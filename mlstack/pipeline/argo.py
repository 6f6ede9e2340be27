"""Pipelines on Argo Workflows: a WorkflowTemplate built with hera, and ``submit()`` to the Argo server;
a pipeline with a schedule also gets a CronWorkflow that runs the template (``schedule()``).

Every step is a container template running ``python -m mlstack.pipeline.entry SOURCE STEP --argo`` in the
step's image; the DAG passes results as output parameters (JSON), fans out with ``withParam``, and passes
each step's lineage (the tables and artifacts read so far) downstream. GPU steps request the manifest's GPU
resource (``nvidia.com/gpu`` by default) and get its tolerations and node selector; every step receives
``MLSTACK_MANIFEST`` from the manifest ConfigMap and the run id (the workflow's name).

Pods run as a non-root user with a read-only root filesystem and a writable ``/tmp`` (the settings live in
:mod:`mlstack.pipeline.security`, shared with CronWorkflows and the chart's workflow defaults); every template
names its service account: the manifest's, else ``mlstack-jobs``.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlstack import names
from mlstack.errors import BackendError, ConfigError, CredentialsError, require
from mlstack.pipeline import jobset as _jobset
from mlstack.pipeline import security
from mlstack.pipeline.schedule import Schedule, coerce_schedule
from mlstack.pipeline.spec import Pipeline

require("hera", "k8s", "rendering pipelines for Argo Workflows")

from hera.workflows import (  # noqa: E402
    DAG,
    ConfigMapEnv,
    Container,
    CronWorkflow,
    Env,
    Parameter,
    Resource,
    Task,
    WorkflowTemplate,
)
from hera.workflows import Resources as HeraResources  # noqa: E402
from hera.workflows import models as m  # noqa: E402

# shared with the components (mlstack/names.py): what they create is what pipelines look for
DEFAULT_NAMESPACE = names.JOBS_NAMESPACE
DEFAULT_CONFIGMAP = names.MANIFEST_CONFIGMAP
CONFIGMAP_KEY = names.MANIFEST_KEY
DEFAULT_GPU_RESOURCE = names.GPU_RESOURCE
DEFAULT_GPU_TOLERATION = dict(names.GPU_TOLERATION)
DEFAULT_IMAGE = "python:3.11-slim"
# The warehouse login files MLStack (components/stack.py) puts in a Secret of the jobs namespace, and where
# every step of a Snowflake / Databricks stack mounts them: names from mlstack/names.py, which both import.
DATA_CREDENTIALS_SECRET = names.DATA_CREDENTIALS_SECRET
SNOWFLAKE_DIR = names.SNOWFLAKE_DIR
DATABRICKS_DIR = names.DATABRICKS_DIR
DATA_CREDENTIALS_MODE = names.DATA_CREDENTIALS_MODE  # Snowflake's connector wants connections.toml private
# With an fsGroup the kubelet hands the Secret's files to that group and adds group read (0440), so the
# non-root step user can still read them: the pod's fsGroup (every pipeline pod has it, see security.py).
DATA_CREDENTIALS_FS_GROUP = security.JOB_GID
_CREDENTIALS_VOLUME = "data-credentials"
OUT_DIR = "/tmp/mlstack"


def dns(name: str) -> str:
    return name.replace("_", "-").lower()


@dataclass
class Rendered:
    """A WorkflowTemplate and the defaults used where the manifest said nothing (``notes``)."""

    template: WorkflowTemplate
    notes: list[str] = field(default_factory=list)
    image_set: bool = True

    def to_yaml(self) -> str:
        return str(self.template.to_yaml())

    def to_dict(self) -> dict[str, Any]:
        return dict(self.template.to_dict())


def _settings(manifest: Any) -> dict[str, Any]:
    from mlstack import manifest as _m

    mf = manifest if isinstance(manifest, _m.Manifest) else _m.resolve(manifest).manifest
    notes: list[str] = []
    o, c = mf.orchestrator, mf.compute
    kube = c if isinstance(c, _m.KubernetesCompute) else None
    argo = o if isinstance(o, _m.ArgoOrchestrator) else None
    namespace = (argo and argo.namespace) or (kube and kube.namespace)
    if not namespace:
        namespace = DEFAULT_NAMESPACE
        notes.append(f"no argo orchestrator or kubernetes compute in the manifest: namespace {namespace!r}")
    sa = (argo and argo.service_account) or (kube and kube.service_account) or None
    if sa is None:
        # never the namespace's "default" account: name the one EksGpuCluster creates (and binds to IRSA)
        sa = security.DEFAULT_SERVICE_ACCOUNT
        notes.append(f"no service account in the manifest: {sa!r} (EksGpuCluster's default)")
    configmap = (argo and argo.configmap) or DEFAULT_CONFIGMAP
    if not (argo and argo.configmap):
        notes.append(f"MLSTACK_MANIFEST from ConfigMap {configmap!r} key {CONFIGMAP_KEY!r} (the default)")
    if kube is not None:
        gpu_resource = kube.gpu.resource
        tolerations = [t.model_dump(exclude_none=True) for t in kube.gpu.tolerations]
        node_selector = dict(kube.gpu.node_selector)
        image = kube.image
    else:
        gpu_resource, node_selector, image = DEFAULT_GPU_RESOURCE, {}, None
        tolerations = []
    if not tolerations:
        tolerations = [dict(DEFAULT_GPU_TOLERATION)]
        if kube is None:
            notes.append("GPU steps tolerate the taint nvidia.com/gpu=true:NoSchedule (the default)")
    credentials: dict[str, Any] | None = None
    if mf.data.kind == "snowflake":
        credentials = {"path": SNOWFLAKE_DIR, "env": {"SNOWFLAKE_HOME": SNOWFLAKE_DIR}}
    elif mf.data.kind == "databricks":
        credentials = {
            "path": DATABRICKS_DIR,
            "env": {"DATABRICKS_CONFIG_FILE": f"{DATABRICKS_DIR}/databrickscfg"},
        }
    if credentials is not None:
        where = ", ".join(f"{k}={v}" for k, v in credentials["env"].items())
        notes.append(
            f"{mf.data.kind} login files from Secret {DATA_CREDENTIALS_SECRET!r} (MLStack's; optional) at "
            f"{credentials['path']}, {where}"
        )
    return {
        "manifest": mf,
        "credentials": credentials,
        "namespace": namespace,
        "service_account": sa,
        "configmap": configmap,
        "gpu_resource": gpu_resource,
        "tolerations": tolerations,
        "node_selector": node_selector,
        "image": image,
        "server_url": argo.server_url if argo else None,
        "notes": notes,
    }


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _source_in_image(pipe: Pipeline) -> str:
    """The pipeline file as the image sees it: relative to the current folder when inside it."""
    src = Path(pipe.source or f"{pipe.name}.py")
    try:
        return src.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return src.name


def to_workflow_template(
    pipe: Pipeline,
    *,
    manifest: Any = None,
    params: Mapping[str, Any] | None = None,
    image: str | None = None,
) -> Rendered:
    """Render ``pipe`` as a hera WorkflowTemplate for the stack ``manifest`` (default: the one in force)."""
    order = pipe.validate()
    values = pipe.resolve_params(params)
    st = _settings(manifest)
    notes = list(st["notes"])
    default_image = image or pipe.image or st["image"]
    image_set = bool(default_image) or all(s.resources.image for s in pipe.steps.values())
    if not default_image:
        default_image = DEFAULT_IMAGE
        if not image_set:
            notes.append(
                f"no image (step image=, Pipeline(image=), --image or compute.image): {DEFAULT_IMAGE!r}; "
                "the image must hold mlstack and this pipeline's code"
            )
    source = _source_in_image(pipe)
    templates: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    for name in order:
        s = pipe.steps[name]
        deps = pipe.deps(name)
        data_deps = [d for d in deps if d in s.arg_names or d == s.foreach]
        multi = s.nodes > 1
        # a multi-node step's values go into the JobSet manifest base64-encoded (any JSON stays valid there)
        args = [source, s.name, "--argo", "--out", OUT_DIR] + (["--b64"] if multi else [])
        inputs: list[Parameter] = []
        arguments: list[Parameter] = []
        for a in s.arg_names:
            if a in pipe.params and a != s.foreach:
                args += ["--param", f"{a}=" + _ref(f"workflow.parameters.{a}", multi)]
        for d in data_deps:
            if d == s.foreach or pipe.steps[d].nodes > 1:
                continue  # a multi-node step's result comes from the run store (--from-run below)
            inputs.append(Parameter(name=d))
            arguments.append(Parameter(name=d, value=f"{{{{tasks.{dns(d)}.outputs.parameters.result}}}}"))
            args += ["--input", f"{d}=" + _ref(f"inputs.parameters.{d}", multi)]
        for d in _lineage_sources(pipe, deps):
            inputs.append(Parameter(name=f"lineage-{d}"))
            arguments.append(
                Parameter(name=f"lineage-{d}", value=f"{{{{tasks.{dns(d)}.outputs.parameters.inputs}}}}")
            )
            args += ["--lineage", _ref(f"inputs.parameters.lineage-{d}", multi)]
        for d in deps:
            if pipe.steps[d].nodes > 1:
                # node rank 0 of a JobSet records its result and reads in the run store; no pod output
                args += ["--from-run", d]
        with_param = None
        if s.foreach is not None:
            inputs.append(Parameter(name="item"))
            arguments.append(Parameter(name="item", value="{{item}}"))
            args += ["--item", "{{inputs.parameters.item}}"]
            with_param = (
                f"{{{{tasks.{dns(s.foreach)}.outputs.parameters.result}}}}"
                if s.foreach in pipe.steps
                else f"{{{{workflow.parameters.{s.foreach}}}}}"
            )
        r = s.resources
        gpu = r.gpus > 0 or r.node_pool is not None  # on the GPU nodes: their toleration and selector
        gpu_resource = r.gpu_resource or st["gpu_resource"]
        node_selector = _node_selector(st, r)
        env: list[Any] = [
            ConfigMapEnv(
                name="MLSTACK_MANIFEST", config_map_name=st["configmap"], config_map_key=CONFIGMAP_KEY
            ),
            Env(name="MLSTACK_RUN_ID", value="{{workflow.name}}"),
            Env(name="MLSTACK_PIPELINE", value=pipe.name),
            Env(name="MLSTACK_STEP", value=s.name),
            Env(name="MLSTACK_RUN_INPUTS", value=f"{OUT_DIR}/inputs.jsonl"),
            Env(name="PYTHONUNBUFFERED", value="1"),
            # the root filesystem is read-only: no .pyc next to the code, caches under the writable /tmp
            Env(name="PYTHONDONTWRITEBYTECODE", value="1"),
            Env(name="HOME", value=security.HOME),
        ]
        env += _record_env(r.image or default_image)
        creds = st["credentials"]
        if creds is not None:  # a step's own env wins
            env += [Env(name=k, value=v) for k, v in sorted(creds["env"].items()) if k not in s.env]
        env += [Env(name=k, value=v) for k, v in sorted(s.env.items())]
        resources = HeraResources(
            cpu_request=r.cpu,
            memory_request=r.memory,
            memory_limit=r.memory,
            gpus=r.gpus or None,
            gpu_flag=gpu_resource,
        )
        if multi:
            templates.append(
                _jobset_template(pipe, s, st, args, env, inputs, r.image or default_image, creds)
            )
            notes.append(
                f"step {s.name!r} (nodes={s.nodes}) runs as a JobSet: the cluster needs the JobSet controller "
                "(EksGpuCluster's jobset option) and the workflow's service account may create JobSets"
            )
        else:
            templates.append(
                dict(
                    name=dns(s.name),
                    image=r.image or default_image,
                    command=["python", "-m", "mlstack.pipeline.entry"],
                    args=args,
                    inputs=inputs or None,
                    outputs=[
                        Parameter(name="result", value_from=m.ValueFrom(path=f"{OUT_DIR}/result.json")),
                        Parameter(
                            name="inputs", value_from=m.ValueFrom(path=f"{OUT_DIR}/inputs.json", default="[]")
                        ),
                    ],
                    env=env,
                    resources=resources if (r.cpu or r.memory or r.gpus) else None,
                    tolerations=[m.Toleration(**t) for t in st["tolerations"]] if gpu else None,
                    node_selector=node_selector or None if gpu else None,
                    retry_strategy=m.RetryStrategy(limit=s.retries, retry_policy="Always")
                    if s.retries
                    else None,
                    active_deadline_seconds=s.timeout,
                    labels={"mlstack.io/step": dns(s.name)},
                    volume_mounts=[
                        *step_volume_mounts(),
                        *(
                            [
                                m.VolumeMount(
                                    name=_CREDENTIALS_VOLUME, mount_path=creds["path"], read_only=True
                                )
                            ]
                            if creds is not None
                            else []
                        ),
                    ],
                    **step_security(s.run_as_root),
                )
            )
        if s.run_as_root:
            notes.append(
                f"step {s.name!r} runs as root (run_as_root=True) with a writable root filesystem: a jobs "
                "namespace enforcing Pod Security 'restricted' refuses it (mlstack plan reports ARGO-004)"
            )
        tasks.append(
            dict(
                name=dns(s.name),
                template=dns(s.name),
                dependencies=[dns(d) for d in deps] or None,
                arguments=arguments or None,
                with_param=with_param,
            )
        )
    with WorkflowTemplate(
        name=pipe.name,
        namespace=st["namespace"],
        entrypoint="main",
        on_exit=EXIT_TEMPLATE,
        service_account_name=st["service_account"],
        arguments=[Parameter(name=k, value=_param_text(v)) for k, v in values.items()]
        + [Parameter(name=k, value=v) for k, v in RECORD_PARAMS.items()],
        labels={"app.kubernetes.io/managed-by": "mlstack", "mlstack.io/pipeline": pipe.name},
        annotations={"mlstack.io/description": pipe.description} if pipe.description else None,
        security_context=workflow_security_context(),
        volumes=workflow_volumes(st["credentials"]),
    ) as wt:
        for kw in templates:
            if "manifest" in kw:
                Resource(**kw)
            else:
                Container(**kw)
        _exit_handler(source, default_image, st)
        with DAG(name="main"):
            for kw in tasks:
                Task(**kw)
    return Rendered(wt, notes, image_set)


def workflow_security_context() -> m.PodSecurityContext:
    """The workflow-level pod securityContext: every pod non-root unless its template says otherwise."""
    return m.PodSecurityContext(**security.pod_security_context(fs_group=DATA_CREDENTIALS_FS_GROUP))


def step_security(run_as_root: bool) -> dict[str, Any]:
    """Container kwargs with the step's container securityContext (and, for a root step, its own pod one).

    Workflow renderers (WorkflowTemplate here, CronWorkflow in the schedules module) pass these to each
    step's hera ``Container`` so every pod comes out the same.
    """
    kw: dict[str, Any] = {
        "security_context": m.SecurityContext(**security.container_security_context(run_as_root=run_as_root))
    }
    if run_as_root:
        kw["pod_security_context"] = m.PodSecurityContext(
            **security.pod_security_context(run_as_root=True, fs_group=DATA_CREDENTIALS_FS_GROUP)
        )
    return kw


def _node_selector(st: dict[str, Any], r: Any) -> dict[str, str]:
    """The manifest's GPU node selector, narrowed to the step's pool (``@step(node_pool=...)``)."""
    from mlstack.pipeline.spec import POOL_LABEL

    out = dict(st["node_selector"])
    if r.node_pool is not None:
        out[POOL_LABEL] = r.node_pool
    return out


def _ref(var: str, b64: bool) -> str:
    """An Argo tag for ``var``: plain, or base64-encoded (sprig, in an expression tag) for values that go into
    a resource template's manifest, where Argo pastes the raw text and a quote or newline would break it."""
    if not b64:
        return "{{" + var + "}}"
    head, _, last = var.rpartition(".")
    return "{{=sprig.b64enc(" + f"{head}['{last}']" + ")}}"


def _lineage_sources(pipe: Pipeline, deps: list[str]) -> list[str]:
    """The single-pod steps whose ``inputs`` output carries the lineage ``deps`` hand on: a dep itself, or, for
    a multi-node dep (a resource template has no pod outputs), that dep's own sources (its own reads come
    from the run store)."""
    out: list[str] = []
    todo = list(deps)
    while todo:
        d = todo.pop(0)
        if pipe.steps[d].nodes > 1:
            todo += [u for u in pipe.deps(d) if u not in out and u not in todo]
        elif d not in out:
            out.append(d)
    return out


def _jobset_template(
    pipe: Pipeline,
    s: Any,
    st: dict[str, Any],
    args: list[str],
    env: list[Any],
    inputs: list[Parameter],
    image: str,
    creds: dict[str, Any] | None,
) -> dict[str, Any]:
    """Resource-template kwargs for a multi-node step: create its JobSet (owned by the workflow, so deleting
    the workflow deletes it) and wait until JobSet reports Completed (success) or Failed (failure)."""
    r = s.resources
    step_name = dns(s.name)
    # {{workflow.parameters.json}} is JSON: pasted raw into the manifest it would break it (the pods' params
    # come base64-encoded in --param instead, and the run record takes them from there)
    k8s_env = [
        e.build().model_dump(by_alias=True, exclude_none=True) for e in env if e.name != "MLSTACK_RUN_PARAMS"
    ]
    for e in k8s_env:
        if e["name"] == "MLSTACK_POD":  # no {{pod.name}} here: each pod reads its own name
            e.pop("value", None)
            e["valueFrom"] = {"fieldRef": {"fieldPath": "metadata.name"}}
    mounts = [dict(v) for v in security.volume_mounts()]
    volumes = [dict(v) for v in security.volumes()]
    if creds is not None:
        mounts.append({"name": _CREDENTIALS_VOLUME, "mountPath": creds["path"], "readOnly": True})
        volumes.append(
            {
                "name": _CREDENTIALS_VOLUME,
                "secret": {
                    "secretName": DATA_CREDENTIALS_SECRET,
                    "defaultMode": DATA_CREDENTIALS_MODE,
                    "optional": True,
                },
            }
        )
    labels = {"mlstack.io/pipeline": pipe.name, "mlstack.io/step": step_name}
    manifest = _jobset.jobset(
        generate_name=_jobset.name_prefix(f"{pipe.name}-{step_name}", s.nodes),
        namespace=st["namespace"],
        nodes=s.nodes,
        image=image,
        command=["python", "-m", "mlstack.pipeline.entry"],
        args=args,
        env=k8s_env,
        service_account=st["service_account"],
        gpus=r.gpus,
        gpu_resource=r.gpu_resource or st["gpu_resource"],
        on_gpu_nodes=r.node_pool is not None,
        cpu=str(r.cpu) if r.cpu else None,
        memory=r.memory,
        tolerations=st["tolerations"],
        node_selector=_node_selector(st, r),
        volumes=volumes,
        volume_mounts=mounts,
        labels={**labels, "workflows.argoproj.io/workflow": "{{workflow.name}}"},
        pod_labels={**labels, names.RUN_LABEL: "{{workflow.name}}"},
        retries=s.retries,
        timeout=s.timeout,
        run_as_root=s.run_as_root,
    )
    return dict(
        name=step_name,
        action="create",
        set_owner_reference=True,
        success_condition=_jobset.SUCCESS_CONDITION,
        failure_condition=_jobset.FAILURE_CONDITION,
        # JSON, not YAML: Argo's expression tags keep their quotes as written
        manifest=json.dumps(manifest, indent=2),
        inputs=inputs or None,
        labels={"mlstack.io/step": step_name},
    )


# Run records (mlstack.runs): every step pod records itself in the artifact store, and the exit handler
# records the run's end, so a run is recorded even when nobody follows it. Two reserved workflow params
# carry a resume (the run whose results to reuse) and --no-cache.
EXIT_TEMPLATE = "mlstack-exit"
RECORD_PARAMS = {"mlstack-resume": "", "mlstack-no-cache": "false"}


def _record_env(image: str) -> list[Any]:
    return [
        Env(name="MLSTACK_RUN_STARTED", value="{{workflow.creationTimestamp}}"),
        Env(name="MLSTACK_RUN_PARAMS", value="{{workflow.parameters.json}}"),
        Env(name="MLSTACK_ARGO_WORKFLOW", value="{{workflow.name}}"),
        Env(name="MLSTACK_ARGO_NAMESPACE", value="{{workflow.namespace}}"),
        Env(name="MLSTACK_POD", value="{{pod.name}}"),
        Env(name="MLSTACK_IMAGE", value=image),
        Env(name="MLSTACK_RESUME", value="{{workflow.parameters.mlstack-resume}}"),
        Env(name="MLSTACK_NO_CACHE", value="{{workflow.parameters.mlstack-no-cache}}"),
    ]


def _exit_handler(source: str, image: str, st: dict[str, Any]) -> None:
    """The onExit template: records the run's end status (and its failures) in the run store (non-root, with
    a read-only root filesystem, like every step)."""
    Container(
        name=EXIT_TEMPLATE,
        image=image,
        command=["python", "-m", "mlstack.pipeline.entry"],
        args=[source, "--argo-exit"],
        env=[
            ConfigMapEnv(
                name="MLSTACK_MANIFEST", config_map_name=st["configmap"], config_map_key=CONFIGMAP_KEY
            ),
            Env(name="MLSTACK_RUN_ID", value="{{workflow.name}}"),
            Env(name="MLSTACK_WORKFLOW_STATUS", value="{{workflow.status}}"),
            Env(name="MLSTACK_WORKFLOW_FAILURES", value="{{workflow.failures}}"),
            Env(name="PYTHONUNBUFFERED", value="1"),
            Env(name="PYTHONDONTWRITEBYTECODE", value="1"),
            Env(name="HOME", value=security.HOME),
            *_record_env(image),
        ],
        resources=HeraResources(cpu_request="100m", memory_request="256Mi", memory_limit="256Mi"),
        labels={"mlstack.io/step": EXIT_TEMPLATE},
        volume_mounts=step_volume_mounts(),
        **step_security(False),
    )


def step_volume_mounts() -> list[m.VolumeMount]:
    """The writable emptyDir mounts (``/tmp``) of every step container."""
    return [m.VolumeMount(name=v["name"], mount_path=v["mountPath"]) for v in security.volume_mounts()]


def workflow_volumes(credentials: dict[str, Any] | None) -> list[Any]:
    """Scratch emptyDirs, plus the login files Secret when the stack has one: optional, so a stack whose owner
    provisions the login another way (their own key pair, no Secret) still runs."""
    out: list[Any] = [
        m.Volume(name=v["name"], empty_dir=m.EmptyDirVolumeSource()) for v in security.volumes()
    ]
    if credentials is not None:
        out.append(
            m.Volume(
                name=_CREDENTIALS_VOLUME,
                secret=m.SecretVolumeSource(
                    secret_name=DATA_CREDENTIALS_SECRET, default_mode=DATA_CREDENTIALS_MODE, optional=True
                ),
            )
        )
    return out


@dataclass
class RenderedCron:
    """A CronWorkflow (hera) that runs the pipeline's WorkflowTemplate, and the schedule it came from."""

    cron_workflow: CronWorkflow
    schedule: Schedule
    params: dict[str, Any]  # the param values the scheduled runs pass (the template's defaults otherwise)

    def to_yaml(self) -> str:
        return str(self.cron_workflow.to_yaml())

    def to_dict(self) -> dict[str, Any]:
        return dict(self.cron_workflow.to_dict())


def to_cron_workflow(
    pipe: Pipeline,
    *,
    manifest: Any = None,
    schedule: Any = None,
    params: Mapping[str, Any] | None = None,
) -> RenderedCron:
    """Render the CronWorkflow of ``pipe``: its ``schedule`` (or the one given), in the template's namespace,
    running the WorkflowTemplate by reference (``workflowTemplateRef``), so the template's pod settings --
    service account, security context, volumes -- are the ones every scheduled run gets.

    ``params`` (over the schedule's own ``params``) become the scheduled runs' arguments; the template's
    defaults apply to the rest. Raises UsageError when the pipeline has no schedule.
    """
    from mlstack.errors import UsageError

    sched = coerce_schedule(schedule, f"pipeline {pipe.name!r}") or pipe.schedule
    if sched is None:
        raise UsageError(
            f"pipeline {pipe.name!r} has no schedule",
            fix="declare one: Pipeline(..., schedule='0 3 * * *'), or pass --cron '0 3 * * *'",
        )
    pipe.validate()
    overrides = {**sched.params, **(params or {})}
    values = pipe.resolve_params(overrides)
    st = _settings(manifest)
    labels = {"app.kubernetes.io/managed-by": "mlstack", "mlstack.io/pipeline": pipe.name}
    cw = CronWorkflow(
        name=pipe.name,
        namespace=st["namespace"],
        labels=labels,
        annotations={"mlstack.io/description": pipe.description} if pipe.description else None,
        schedules=list(sched.crons),
        timezone=sched.timezone,
        concurrency_policy=sched.concurrency,
        starting_deadline_seconds=sched.starting_deadline,
        cron_suspend=True if sched.suspend else None,
        workflow_template_ref=m.WorkflowTemplateRef(name=pipe.name),
        # also said here, not only inherited through the reference: scheduled runs stay non-root and keep
        # their service account even if the referenced template is replaced by a hand-written one
        service_account_name=st["service_account"],
        security_context=workflow_security_context(),
        # the Workflows it creates carry the pipeline's labels (Argo adds workflows.argoproj.io/cron-workflow)
        workflow_metadata=m.ObjectMeta(labels=labels | {"mlstack.io/schedule": pipe.name}),
        arguments=[Parameter(name=k, value=_param_text(values[k])) for k in overrides] or None,
    )
    return RenderedCron(cw, sched, {k: values[k] for k in overrides})


class ArgoRunner:
    """Sends pipelines to the Argo server (registry kind ``argo`` of the orchestrator layer).

    The server URL comes from ``server_url=``, ``$ARGO_SERVER`` (as the argo CLI reads it, e.g. a
    port-forward ``https://localhost:2746``) or the manifest; the bearer token from ``token=`` or
    ``$ARGO_TOKEN``. ``$ARGO_INSECURE_SKIP_VERIFY=true`` accepts a self-signed certificate.
    """

    def __init__(
        self,
        manifest: Any = None,
        *,
        server_url: str | None = None,
        token: str | None = None,
        verify: bool | None = None,
        timeout: float = 30.0,
    ) -> None:
        from mlstack import manifest as _m

        if manifest is None or isinstance(manifest, str | os.PathLike | _m.Manifest):
            self.manifest = manifest
        else:  # an orchestrator section from the registry: use the manifest in force
            self.manifest = None
        self._server = server_url
        self.token = token if token is not None else os.environ.get("ARGO_TOKEN")
        if verify is None:
            verify = os.environ.get("ARGO_INSECURE_SKIP_VERIFY", "").lower() not in ("1", "true", "yes")
        self.verify = verify
        self.timeout = timeout

    def render(
        self, pipe: Pipeline, params: Mapping[str, Any] | None = None, image: str | None = None
    ) -> Rendered:
        return to_workflow_template(pipe, manifest=self.manifest, params=params, image=image)

    def _request(self, method: str, url: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json")
        if self.token:
            tok = self.token if self.token.lower().startswith("bearer ") else f"Bearer {self.token}"
            req.add_header("Authorization", tok)
        ctx = self._ssl_context(url)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=ctx) as resp:
                text = resp.read().decode() or "{}"
                return resp.status, json.loads(text)
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                payload = json.loads(text)
            except ValueError:
                payload = {"message": text}
            return exc.code, payload
        except (urllib.error.URLError, OSError) as exc:
            raise BackendError(
                f"cannot reach the Argo server at {url}: {exc}",
                fix="check the URL (kubectl -n <argo ns> port-forward svc/argo-workflows-server 2746, "
                "then ARGO_SERVER=https://localhost:2746)",
            ) from None

    def _ssl_context(self, url: str) -> ssl.SSLContext | None:
        if url.startswith("https://") and not self.verify:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        return None

    def server(self) -> str:
        """The Argo server's base URL: ``server_url=``, else ``$ARGO_SERVER``, else the manifest's."""
        return self._server_and_namespace()[0]

    def submit(
        self,
        pipe: Pipeline,
        params: Mapping[str, Any] | None = None,
        *,
        image: str | None = None,
        resume: str | None = None,
        no_cache: bool = False,
    ) -> dict[str, Any]:
        """Create or update the WorkflowTemplate, then submit a workflow from it with ``params``.

        ``resume``: a run whose results the step pods reuse where their code and inputs match (see
        docs/pipelines.md, Resume); ``no_cache``: run ``@step(cache=True)`` steps anyway."""
        rendered = self.render(pipe, None, image)
        if not rendered.image_set:
            raise ConfigError(
                f"pipeline {pipe.name!r} names no container image to run on Argo",
                fix="set Pipeline(image=...), a step's image=, --image, or the manifest's compute.image",
            )
        server, ns = self._server_and_namespace()
        name = rendered.template.name
        self._apply("workflow-templates", "template", "WorkflowTemplate", server, ns, rendered.to_dict())
        values = pipe.resolve_params(params)
        submit_body = {
            "namespace": ns,
            "resourceKind": "WorkflowTemplate",
            "resourceName": name,
            "submitOptions": {
                "generateName": f"{name}-",
                "parameters": [f"{k}={_param_text(v)}" for k, v in values.items() if k in (params or {})]
                + ([f"mlstack-resume={resume}"] if resume else [])
                + (["mlstack-no-cache=true"] if no_cache else []),
                "labels": "app.kubernetes.io/managed-by=mlstack",
            },
        }
        code, wf = self._request("POST", f"{server}/api/v1/workflows/{ns}/submit", submit_body)
        self._check(code, wf, f"submit a workflow from {ns}/{name}")
        wf_name = wf.get("metadata", {}).get("name")
        return {
            "workflow": wf_name,
            "namespace": ns,
            "template": name,
            "server": server,
            "url": f"{server}/workflows/{ns}/{wf_name}",
            "run_id": wf_name,
            "created": _created(wf),
        }

    def run(self, pipe: Pipeline, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Same as :meth:`submit` (runners share ``run``): the workflow runs on the cluster."""
        return self.submit(pipe, params)

    # ------------------------------------------------------------ schedules (CronWorkflows)
    def schedule(
        self,
        pipe: Pipeline,
        params: Mapping[str, Any] | None = None,
        *,
        image: str | None = None,
        schedule: Any = None,
    ) -> dict[str, Any]:
        """Create or update the WorkflowTemplate, then the CronWorkflow that runs it on ``pipe.schedule``
        (or ``schedule``). Everything is rendered and checked before the first request."""
        cron = to_cron_workflow(pipe, manifest=self.manifest, schedule=schedule, params=params)
        rendered = self.render(pipe, None, image)
        if not rendered.image_set:
            raise ConfigError(
                f"pipeline {pipe.name!r} names no container image to run on Argo",
                fix="set Pipeline(image=...), a step's image=, --image, or the manifest's compute.image",
            )
        server, ns = self._server_and_namespace()
        self._apply("workflow-templates", "template", "WorkflowTemplate", server, ns, rendered.to_dict())
        created = self._apply("cron-workflows", "cronWorkflow", "CronWorkflow", server, ns, cron.to_dict())
        name = cron.cron_workflow.name
        return {
            "cron_workflow": name,
            "namespace": ns,
            "template": rendered.template.name,
            "server": server,
            "url": f"{server}/cron-workflows/{ns}/{name}",
            "created": created,
            **cron.schedule.to_dict(),
            "params": cron.params,
        }

    def schedules(self) -> list[dict[str, Any]]:
        """The CronWorkflows mlstack manages in the namespace (labelled managed-by=mlstack), one summary each."""
        server, ns = self._server_and_namespace()
        selector = urllib.parse.quote("app.kubernetes.io/managed-by=mlstack", safe="")
        code, payload = self._request(
            "GET", f"{server}/api/v1/cron-workflows/{ns}?listOptions.labelSelector={selector}"
        )
        self._check(code, payload, f"list CronWorkflows in {ns}")
        out = []
        for item in payload.get("items") or []:  # Argo sends "items": null for an empty list
            meta, spec, status = item.get("metadata", {}), item.get("spec", {}), item.get("status") or {}
            schedules = list(spec.get("schedules") or ([spec["schedule"]] if spec.get("schedule") else []))
            ref = (spec.get("workflowSpec") or {}).get("workflowTemplateRef") or {}
            out.append(
                {
                    "name": meta.get("name"),
                    "namespace": meta.get("namespace", ns),
                    "pipeline": (meta.get("labels") or {}).get("mlstack.io/pipeline"),
                    "template": ref.get("name"),
                    "cron": schedules,
                    "timezone": spec.get("timezone") or None,
                    "concurrency": spec.get("concurrencyPolicy") or "Allow",
                    "suspended": bool(spec.get("suspend")),
                    "last_scheduled": status.get("lastScheduledTime"),
                    "active": [a.get("name") for a in status.get("active") or []],
                    "succeeded": status.get("succeeded"),
                    "failed": status.get("failed"),
                    "created": meta.get("creationTimestamp"),
                    "url": f"{server}/cron-workflows/{meta.get('namespace', ns)}/{meta.get('name')}",
                }
            )
        return out

    def unschedule(self, name: str) -> dict[str, Any]:
        """Delete the CronWorkflow ``name`` (runs it started and the WorkflowTemplate stay)."""
        server, ns = self._server_and_namespace()
        code, payload = self._request("DELETE", f"{server}/api/v1/cron-workflows/{ns}/{name}")
        if code == 404:
            raise BackendError(
                f"no CronWorkflow {name!r} in namespace {ns!r} on {server}",
                fix="`mlstack schedule ls` lists the schedules there",
            )
        self._check(code, payload, f"delete CronWorkflow {ns}/{name}")
        return {"cron_workflow": name, "namespace": ns, "server": server, "deleted": True}

    # ------------------------------------------------------------ the server
    def _server_and_namespace(self) -> tuple[str, str]:
        st = _settings(self.manifest)
        server = (self._server or os.environ.get("ARGO_SERVER") or st["server_url"] or "").rstrip("/")
        if not server:
            raise ConfigError(
                "no Argo server URL: the manifest's orchestrator has no server_url",
                fix="set $ARGO_SERVER (e.g. https://localhost:2746 after a port-forward) or pass server_url=",
            )
        if "://" not in server:
            server = "https://" + server
        return server, st["namespace"]

    def _apply(self, resource: str, key: str, kind: str, server: str, ns: str, body: dict[str, Any]) -> bool:
        """Create ``body`` (a WorkflowTemplate or CronWorkflow), or update it in place when it exists with the
        server copy's resourceVersion (retrying when another writer updated it in between). True if created."""
        name = body["metadata"]["name"]
        base = f"{server}/api/v1/{resource}/{ns}"
        code, payload = self._request("POST", base, {"namespace": ns, key: body})
        if code != 409:  # 409: it exists
            self._check(code, payload, f"create {kind} {ns}/{name}")
            return True
        for _ in range(3):
            code, current = self._request("GET", f"{base}/{name}")
            self._check(code, current, f"read {kind} {ns}/{name}")
            body.setdefault("metadata", {})["resourceVersion"] = current.get("metadata", {}).get(
                "resourceVersion"
            )
            code, payload = self._request("PUT", f"{base}/{name}", {"namespace": ns, "name": name, key: body})
            if code != 409:  # 409 here: someone updated it since our GET; read it again
                break
        self._check(code, payload, f"update {kind} {ns}/{name}")
        return False

    @staticmethod
    def _check(code: int, payload: Any, what: str) -> None:
        if 200 <= code < 300:
            return
        msg = payload.get("message") if isinstance(payload, dict) else str(payload)
        if code in (401, 403):
            raise CredentialsError(
                f"the Argo server refused to {what} (HTTP {code}): {msg}",
                fix="set ARGO_TOKEN to a token of a service account allowed in that namespace "
                "(kubectl create token <sa> -n <ns>)",
            )
        raise BackendError(
            f"the Argo server could not {what} (HTTP {code}): {msg}", fix="see the message above"
        )


def _created(wf: dict[str, Any]) -> str | None:
    """The workflow's creationTimestamp as a run record's start (what its pods see too)."""
    raw = (wf.get("metadata") or {}).get("creationTimestamp")
    if not raw:
        return None
    from mlstack.runs._store import now_iso, parse_iso

    ts = parse_iso(raw)
    return now_iso(ts) if ts is not None else None
