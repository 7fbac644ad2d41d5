#!/usr/bin/env python3
"""moto's server with the ECS behaviour gantry's integration tests need.

Runs moto 5.2.5's server app on 127.0.0.1 and patches its ECS and EC2 models so
that what they return looks like a real, steady ECS cluster that lives entirely
on the loopback range:

* tasks stay RUNNING (moto's state manager otherwise drifts them towards
  STOPPED each time they are described);
* every container of a task definition is listed, RUNNING, with the task's
  health status;
* bridge and host tasks on a container instance get ``networkBindings``
  (static host ports as asked, dynamic ones from 32768 upwards, unique per
  container instance);
* awsvpc tasks get an ENI whose private IP comes from a loopback pool
  (127.0.2.1, 127.0.2.2, ...), shown both in ``attachments`` and in
  ``containers[].networkInterfaces``;
* tasks have an ``availabilityZone`` and a ``healthStatus``;
* ``ListTasks`` filters like ECS (exact cluster, desired status RUNNING by
  default, STOPPED tasks left out) and ``DescribeTasks`` reports unknown tasks
  as ``MISSING`` failures;
* no ENI of any kind (task or EC2 instance) ever gets a non-loopback private
  IP or a public IP: gantry dials these addresses, and tests may only send
  traffic to 127.0.0.0/8.

It also serves test-only JSON endpoints under ``/_gantry/`` on the same port:

* ``GET  /_gantry/ready``        200 (with its pid) once warmed up;
* ``POST /_gantry/task``         change a task's health, statuses or zone;
* ``POST /_gantry/fault``        make the next N calls of an operation fail;
* ``GET  /_gantry/fault``        the faults still pending;
* ``GET  /_gantry/calls``        ECS/EC2 calls received, by operation name;
* ``POST /_gantry/calls/reset``  forget those counts.

Usage: ``python gantry_moto.py --port 5000 [--host 127.0.0.1] [--verbose]
[--exit-with-parent]``. With ``--exit-with-parent`` (as the Rust harness runs
it) the process ends by itself once its parent is gone, so a crashed test run
leaves no server behind.
"""

from __future__ import annotations

import argparse
import http.client
import inspect
import io
import ipaddress
import json
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import moto

# The patches below reach into moto's internals, which change between
# releases: refuse to run on any other version rather than misbehave quietly.
EXPECTED_MOTO_VERSION = "5.2.5"
if moto.__version__ != EXPECTED_MOTO_VERSION:
    sys.exit(
        f"gantry_moto.py: moto {EXPECTED_MOTO_VERSION} is required, found "
        f"{moto.__version__}; reinstall tests/moto/requirements.txt"
    )

# pylint: disable=wrong-import-position
from moto.core.responses import ActionResult  # noqa: E402
from moto.core.utils import utcnow  # noqa: E402
from moto.ec2.models import ec2_backends  # noqa: E402
from moto.ec2.models import elastic_network_interfaces as eni_models  # noqa: E402
from moto.ec2.utils import generate_dns_from_ip  # noqa: E402
from moto.ecs import models as ecs_models  # noqa: E402
from moto.ecs import responses as ecs_responses  # noqa: E402
from moto.ecs.exceptions import InvalidParameterException  # noqa: E402
from moto.moto_api import state_manager  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402

# The account moto files requests signed with the "test" access key under.
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
DEFAULT_ZONE = "us-east-1a"

# First host port ECS hands out for bridge-mode mappings without a host port.
FIRST_DYNAMIC_PORT = 32768
LAST_PORT = 65535

HEALTH_STATUSES = {"HEALTHY", "UNHEALTHY", "UNKNOWN"}
TASK_STATUSES = {
    "PROVISIONING",
    "PENDING",
    "ACTIVATING",
    "RUNNING",
    "DEACTIVATING",
    "STOPPING",
    "DEPROVISIONING",
    "STOPPED",
    "DELETED",
}
DESIRED_STATUSES = {"PENDING", "RUNNING", "STOPPED"}

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


# --------------------------------------------------------------------------
# Loopback addresses
# --------------------------------------------------------------------------


class LoopbackPool:
    """Hands out 127.0.2.1 ... 127.0.2.254, 127.0.3.1, ... once each.

    Used for awsvpc task ENIs and for any EC2 ENI that moto would otherwise
    give a non-loopback address (an instance outside a 127.0.0.0/16 VPC).
    127.0.0.x and 127.0.1.x are left to the test's own servers and to EC2
    instances in the harness's 127.0.1.0/24 subnet.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken = 0

    def take(self) -> str:
        with self._lock:
            index = self._taken
            self._taken += 1
        third, fourth = 2 + index // 254, 1 + index % 254
        if third > 255:
            raise RuntimeError("the loopback address pool is exhausted")
        return f"127.0.{third}.{fourth}"


POOL = LoopbackPool()


def is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "") in LOOPBACK
    except ValueError:
        return False


# --------------------------------------------------------------------------
# EC2 patches: loopback-only ENIs
# --------------------------------------------------------------------------

_original_eni_init = eni_models.NetworkInterface.__init__


def _eni_init(self: Any, *args: Any, **kwargs: Any) -> None:
    """NetworkInterface.__init__, then any non-loopback private IP replaced.

    Instances launched in a 127.0.0.0/16 subnet already get loopback IPs from
    the subnet and are left alone; anything else (default VPC, 10.x from
    moto's random_private_ip) gets the next address of the pool.
    """
    _original_eni_init(self, *args, **kwargs)
    if is_loopback(self.private_ip_address):
        return
    old, new = self.private_ip_address, POOL.take()
    self.private_ip_address = new
    for entry in self.private_ip_addresses:
        address = entry.get("PrivateIpAddress")
        if address == old:
            entry["PrivateIpAddress"] = new
        elif not is_loopback(address):
            entry["PrivateIpAddress"] = POOL.take()
        if entry.get("PrivateDnsName"):
            entry["PrivateDnsName"] = generate_dns_from_ip(entry["PrivateIpAddress"])
    if getattr(self, "private_dns_name", None):
        self.private_dns_name = generate_dns_from_ip(new)


def _no_public_ip(self: Any) -> None:
    """Replaces NetworkInterface.check_auto_public_ip: never a public IP."""
    self.public_ip = None


# --------------------------------------------------------------------------
# ECS patches
# --------------------------------------------------------------------------


def _last_segment(arn: str) -> str:
    """The id at the end of an ARN ("...:task/cluster/ID" -> "ID")."""
    return arn.split("/")[-1]


def _backend_for_arn(arn: str) -> Any:
    """The ECS backend that owns an ARN (arn:aws:ecs:REGION:ACCOUNT:...)."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[2] != "ecs":
        raise ValueError(f"not an ECS ARN: {arn!r}")
    return ecs_models.ecs_backends[parts[4]][parts[3]]


def _container_instance(task: Any) -> Any:
    """The moto ContainerInstance a task was placed on, or None."""
    if not task.container_instance_arn:
        return None
    instances = task._backend.container_instances.get(task.cluster_name, {})
    return instances.get(_last_segment(task.container_instance_arn))


def _eni_attachment(task: Any) -> dict[str, Any] | None:
    for attachment in task.attachments:
        if attachment.get("type") == "ElasticNetworkInterface":
            return attachment
    return None


def _attachment_detail(attachment: dict[str, Any], name: str) -> Any:
    for detail in attachment.get("details", []):
        if detail.get("name") == name:
            return detail.get("value")
    return None


def _task_zone(task: Any) -> str:
    """The zone of the task's subnet (awsvpc) or container instance."""
    ec2 = ec2_backends[task._account_id][task.region_name]
    attachment = _eni_attachment(task)
    if attachment is not None:
        subnet_id = _attachment_detail(attachment, "subnetId")
        try:
            return ec2.get_subnet(subnet_id).availability_zone
        except Exception:  # an unknown subnet: fall back to the default
            return DEFAULT_ZONE
    instance = _container_instance(task)
    if instance is not None:
        return instance.attributes.get("ecs.availability-zone") or DEFAULT_ZONE
    return DEFAULT_ZONE


class GantryContainer:
    """One container of a task, as DescribeTasks shows it.

    Replaces moto's Container, which only ever describes the first container
    definition. moto's serializer reads the attributes by their snake_case
    names; None values are left out of the response.
    """

    def __init__(self, task: Any, definition: dict[str, Any]) -> None:
        self._task = task
        partition = task.task_arn.split(":")[1]
        self.container_arn = (
            f"arn:{partition}:ecs:{task.region_name}:{task._account_id}:"
            f"container/{task.cluster_name}/{task.id}/{uuid.uuid4()}"
        )
        self.task_arn = task.task_arn
        self.name = definition.get("name")
        self.image = definition.get("image")
        self.runtime_id = uuid.uuid4().hex
        # ECS reports these as strings in Container (unlike the definition).
        self.cpu = str(definition.get("cpu", 0))
        memory = definition.get("memory")
        self.memory = None if memory is None else str(memory)
        reservation = definition.get("memoryReservation")
        self.memory_reservation = None if reservation is None else str(reservation)
        self.network_bindings: list[dict[str, Any]] = []
        self.network_interfaces: list[dict[str, Any]] = []

    @property
    def last_status(self) -> str:
        """Follows the task: PENDING before it runs, STOPPED after."""
        status = self._task.last_status
        if status in ("PROVISIONING", "PENDING", "ACTIVATING"):
            return "PENDING"
        if status in ("STOPPED", "DELETED"):
            return "STOPPED"
        return "RUNNING"

    @property
    def health_status(self) -> str:
        return self._task.health_status


def _reserved_ports(instance: Any) -> list[str]:
    """The live list of ports moto has reserved on a container instance."""
    for resource in instance.remaining_resources:
        if resource.get("name") == "PORTS":
            return resource.setdefault("stringSetValue", [])
    raise RuntimeError("container instance without a PORTS resource")


def _dynamic_port(instance: Any) -> int:
    """The next free host port of a container instance, from 32768 upwards.

    Ports are handed out in increasing order and are not reused until the
    range wraps, so two tasks never share one even across a stop.
    """
    reserved = {int(port) for port in _reserved_ports(instance)}
    port = getattr(instance, "_gantry_next_port", FIRST_DYNAMIC_PORT)
    for _ in range(LAST_PORT - FIRST_DYNAMIC_PORT + 1):
        if port > LAST_PORT:
            port = FIRST_DYNAMIC_PORT
        if port not in reserved:
            instance._gantry_next_port = port + 1
            return port
        port += 1
    raise RuntimeError("no free host port left on the container instance")


def _static_host_ports(task_definition: Any) -> list[int]:
    """Host ports a task of this definition occupies on its instance."""
    mode = task_definition.network_mode or "bridge"
    ports = []
    for definition in task_definition.container_definitions:
        for mapping in definition.get("portMappings") or []:
            host_port = mapping.get("hostPort") or 0
            if mode == "host":
                host_port = host_port or mapping.get("containerPort") or 0
            if mode in ("bridge", "host") and host_port > 0:
                ports.append(host_port)
    return ports


def _bind_ports(task: Any, task_definition: Any) -> None:
    """Fills containers[].networkBindings of a bridge/host task.

    The dynamic ports are reserved on the instance and added to the task's
    own resource requirements, so that moto's stop_task releases them along
    with the static ones.
    """
    instance = _container_instance(task)
    mode = task_definition.network_mode or "bridge"
    if instance is None or mode not in ("bridge", "host"):
        return
    requirements = dict(task.resource_requirements or {})
    requirements["PORTS"] = list(requirements.get("PORTS", []))
    containers = zip(
        task.containers, task_definition.container_definitions, strict=True
    )
    for container, definition in containers:
        for mapping in definition.get("portMappings") or []:
            container_port = mapping.get("containerPort")
            if not container_port:
                continue  # port ranges are not emulated
            host_port = mapping.get("hostPort") or 0
            if mode == "host":
                host_port = host_port or container_port
            elif host_port <= 0:
                host_port = _dynamic_port(instance)
                _reserved_ports(instance).append(str(host_port))
                requirements["PORTS"].append(host_port)
            container.network_bindings.append(
                {
                    "bindIP": "0.0.0.0",
                    "containerPort": container_port,
                    "hostPort": host_port,
                    "protocol": mapping.get("protocol", "tcp"),
                }
            )
    task.resource_requirements = requirements


def _attach_interfaces(task: Any) -> None:
    """Tidies an awsvpc task's ENI attachment and mirrors it per container."""
    attachment = _eni_attachment(task)
    if attachment is None:
        return
    # moto adds privateDnsName/macAddress too; drop entries without a value.
    attachment["details"] = [
        detail
        for detail in attachment.get("details", [])
        if detail.get("value") is not None
    ]
    address = _attachment_detail(attachment, "privateIPv4Address")
    if not is_loopback(address):
        raise RuntimeError(f"an awsvpc task got a non-loopback IP {address!r}")
    for container in task.containers:
        container.network_interfaces = [
            {"attachmentId": attachment["id"], "privateIpv4Address": address}
        ]


_original_task_init = ecs_models.Task.__init__
_task_signature = inspect.signature(_original_task_init)


def _task_init(self: Any, *args: Any, **kwargs: Any) -> None:
    """Task.__init__, then the fields moto leaves out filled in."""
    _original_task_init(self, *args, **kwargs)
    arguments = _task_signature.bind(self, *args, **kwargs).arguments
    task_definition = arguments["task_definition"]
    self.health_status = "UNKNOWN"
    self.created_at = self.started_at = utcnow()
    self.connectivity = "CONNECTED"
    self.containers = [
        GantryContainer(self, definition)
        for definition in task_definition.container_definitions
    ]
    self.availability_zone = _task_zone(self)
    _attach_interfaces(self)
    _bind_ports(self, task_definition)


_original_requirements = (
    ecs_models.EC2ContainerServiceBackend._calculate_task_resource_requirements
)


def _resource_requirements(task_definition: Any) -> dict[str, Any]:
    """Replaces _calculate_task_resource_requirements' PORTS.

    moto reserves every ``hostPort`` key it sees, 0 included, so a second
    bridge task with a dynamic port could not be placed on the same instance;
    and it reserves nothing for host mode without a host port.
    """
    requirements = _original_requirements(task_definition)
    requirements["PORTS"] = _static_host_ports(task_definition)
    return requirements


def _list_tasks(
    self: Any,
    cluster_str: str | None = None,
    container_instance: str | None = None,
    family: str | None = None,
    started_by: str | None = None,
    service_name: str | None = None,
    desiredStatus: str | None = None,  # noqa: N803 (moto's parameter name)
) -> list[Any]:
    """ListTasks as ECS does it.

    The cluster must match exactly (moto matches substrings, so "a" listed the
    tasks of "ab"); the desired status defaults to RUNNING, and a RUNNING
    listing leaves out tasks that already stopped.
    """
    cluster = self._get_cluster(cluster_str or "default")
    wanted = desiredStatus or "RUNNING"
    listed = []
    for task in self.tasks.get(cluster.name, {}).values():
        if task.cluster_arn != cluster.arn:
            continue
        instance_id = _last_segment(task.container_instance_arn or "")
        if container_instance and instance_id != _last_segment(container_instance):
            continue
        # task-definition/FAMILY:REVISION
        task_family = _last_segment(task.task_definition_arn).rsplit(":", 1)[0]
        if family and task_family != family:
            continue
        if started_by and task.started_by != started_by:
            continue
        if service_name and task.group != f"service:{_last_segment(service_name)}":
            continue
        if task.desired_status != wanted:
            continue
        if wanted == "RUNNING" and task.last_status == "STOPPED":
            continue
        listed.append(task)
    return listed


def _names_task(reference: str, task: Any) -> bool:
    """Whether a DescribeTasks entry (an id, a short or a long ARN) names the task."""
    if reference == task.id:
        return True
    prefix = task.task_arn.split(":task/")[0] + ":task/"
    return reference.startswith(prefix) and _last_segment(reference) == task.id


def _describe_tasks(self: Any, cluster_str: str, tasks: list[str]) -> list[Any]:
    """DescribeTasks limited to the cluster asked for, by exact ARN or id.

    moto's version searches every cluster, matches ids as substrings and
    advances the task's state machine on every call.
    """
    cluster = self._get_cluster(cluster_str)
    if not tasks:
        raise InvalidParameterException("Tasks cannot be empty.")
    by_id = {task.id: task for task in self.tasks.get(cluster.name, {}).values()}
    found, seen = [], set()
    for reference in tasks:
        task = by_id.get(_last_segment(reference))
        if task is None or task.id in seen or not _names_task(reference, task):
            continue
        seen.add(task.id)
        found.append(task)
    return found


def _describe_tasks_response(self: Any) -> ActionResult:
    """EC2ContainerServiceResponse.describe_tasks, with MISSING failures."""
    cluster = self._get_param("cluster", "default")
    references = self._get_param("tasks", [])
    tasks = self.ecs_backend.describe_tasks(cluster, references)
    if "TAGS" in self._get_param("include", []):
        self._include_in_response(ecs_responses.DESCRIBE_TASKS_TAGS)
    else:
        self._exclude_from_response(ecs_responses.DESCRIBE_TASKS_TAGS)
    found = {task.id for task in tasks}
    failures = [
        {"arn": reference, "reason": "MISSING"}
        for reference in references
        if _last_segment(reference) not in found
    ]
    return ActionResult({"tasks": tasks, "failures": failures})


_original_stop_task = ecs_models.EC2ContainerServiceBackend.stop_task


def _stop_task(self: Any, cluster_str: str, task_str: str, reason: str) -> Any:
    """stop_task, idempotent: moto would release the task's resources again
    (and fail on the ports) when a stopped task is stopped a second time."""
    cluster = self._get_cluster(cluster_str)
    for task in self.tasks.get(cluster.name, {}).values():
        if task.id == _last_segment(task_str) and getattr(task, "_gantry_stopped", 0):
            return task
    task = _original_stop_task(self, cluster_str, task_str, reason)
    task._gantry_stopped = True
    task.stopping_at = task.stopped_at = task.execution_stopped_at = utcnow()
    task.stop_code = "UserInitiated"
    return task


def install_patches() -> None:
    """Applies every patch; called once, before the server takes requests."""
    # Tasks start RUNNING; with a manual progression of 10^9 describes they
    # never move on (the state manager's trick from ECS-EMULATOR.md).
    state_manager.set_transition(
        model_name="ecs::task",
        transition={"progression": "manual", "times": 1_000_000_000},
    )

    eni = eni_models.NetworkInterface
    eni.__init__ = _eni_init
    eni.check_auto_public_ip = _no_public_ip
    # moto sets private_dns_name only in VPCs with DNS hostnames enabled, and
    # Task.__init__ reads it: give it a default instead of an AttributeError.
    eni.private_dns_name = None

    # Task ENIs: the loopback pool instead of random 10.x addresses.
    ecs_models.random_private_ip = lambda *args, **kwargs: POOL.take()
    ecs_models.Task.__init__ = _task_init

    backend = ecs_models.EC2ContainerServiceBackend
    backend._calculate_task_resource_requirements = staticmethod(_resource_requirements)
    backend.list_tasks = _list_tasks
    backend.describe_tasks = _describe_tasks
    backend.stop_task = _stop_task
    ecs_responses.EC2ContainerServiceResponse.describe_tasks = _describe_tasks_response


# --------------------------------------------------------------------------
# Test endpoints, call counts and fault injection
# --------------------------------------------------------------------------


def json_response(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


class BadRequestError(Exception):
    """A /_gantry request the wrapper refuses, with the reason."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class GantryApp:
    """WSGI middleware in front of moto's app.

    Counts each AWS call by operation, fails it if a fault is pending for
    that operation, and answers /_gantry/ itself.
    """

    def __init__(self, moto_app: Callable[..., Iterable[bytes]]) -> None:
        self.moto_app = moto_app
        self.ready = threading.Event()
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        # operation ("DescribeTasks", or "*" for any) -> [kind, remaining]
        self._faults: dict[str, list[Any]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").startswith("/_gantry/"):
            return self.control(Request(environ))(environ, start_response)
        operation, protocol = operation_of(environ)
        if operation is not None:
            kind = self.count_and_take_fault(operation)
            if kind is not None:
                return aws_error(kind, protocol)(environ, start_response)
        return self.moto_app(environ, start_response)

    def count_and_take_fault(self, operation: str) -> str | None:
        """Counts the call; returns the kind of fault to answer it with."""
        with self._lock:
            self._calls[operation] += 1
            for key in (operation, "*"):
                fault = self._faults.get(key)
                if fault is not None:
                    fault[1] -= 1
                    if fault[1] <= 0:
                        del self._faults[key]
                    return fault[0]
        return None

    def control(self, request: Request) -> Response:
        routes = {
            ("GET", "/_gantry/ready"): self.get_ready,
            ("POST", "/_gantry/task"): self.post_task,
            ("POST", "/_gantry/fault"): self.post_fault,
            ("GET", "/_gantry/fault"): self.get_faults,
            ("GET", "/_gantry/calls"): self.get_calls,
            ("POST", "/_gantry/calls/reset"): self.reset_calls,
        }
        handler = routes.get((request.method, request.path))
        if handler is None:
            known = any(path == request.path for _, path in routes)
            return json_response(
                405 if known else 404,
                {"error": f"no {request.method} {request.path}"},
            )
        try:
            return handler(request)
        except BadRequestError as error:
            return json_response(error.status, {"error": str(error)})

    @staticmethod
    def body(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(request.get_data(as_text=True) or "{}")
        except ValueError as error:
            raise BadRequestError(f"the body is not JSON: {error}") from error
        if not isinstance(body, dict):
            raise BadRequestError("the body must be a JSON object")
        return body

    def get_ready(self, _request: Request) -> Response:
        if not self.ready.is_set():
            return json_response(503, {"ready": False})
        # The pid lets the harness check that it reached its own server.
        body = {"ready": True, "moto": moto.__version__, "pid": os.getpid()}
        return json_response(200, body)

    def post_task(self, request: Request) -> Response:
        """{"task": ARN, "health"?, "lastStatus"?, "desiredStatus"?,
        "availabilityZone"?} -> the task's fields after the change."""
        body = self.body(request)
        arn = body.pop("task", None)
        if not isinstance(arn, str):
            raise BadRequestError('"task" (a task ARN) is required')
        checks = {
            "health": HEALTH_STATUSES,
            "lastStatus": TASK_STATUSES,
            "desiredStatus": DESIRED_STATUSES,
            "availabilityZone": None,
        }
        for key, value in body.items():
            if key not in checks:
                raise BadRequestError(f"unknown field {key!r}; known: {sorted(checks)}")
            allowed = checks[key]
            if not isinstance(value, str) or not value:
                raise BadRequestError(f"{key} must be a non-empty string")
            if allowed is not None and value not in allowed:
                raise BadRequestError(f"{key} must be one of {sorted(allowed)}")
        task = find_task(arn)
        if "health" in body:
            task.health_status = body["health"]
        if "lastStatus" in body:
            task.last_status = body["lastStatus"]
        if "desiredStatus" in body:
            task.desired_status = body["desiredStatus"]
        if "availabilityZone" in body:
            task.availability_zone = body["availabilityZone"]
        return json_response(
            200,
            {
                "task": task.task_arn,
                "health": task.health_status,
                "lastStatus": task.last_status,
                "desiredStatus": task.desired_status,
                "availabilityZone": task.availability_zone,
            },
        )

    def post_fault(self, request: Request) -> Response:
        """{"operation": "DescribeTasks"|"*", "count": N, "kind": "throttle"|"500"}.

        Replaces any fault pending for that operation; count 0 clears it.
        """
        body = self.body(request)
        operation, count = body.get("operation"), body.get("count", 1)
        kind = body.get("kind", "throttle")
        if not isinstance(operation, str) or not operation:
            raise BadRequestError('"operation" is required (an API action name or "*")')
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise BadRequestError('"count" must be an integer >= 0')
        if kind not in ("throttle", "500"):
            raise BadRequestError('"kind" must be "throttle" or "500"')
        with self._lock:
            if count == 0:
                self._faults.pop(operation, None)
            else:
                self._faults[operation] = [kind, count]
        return self.get_faults(request)

    def get_faults(self, _request: Request) -> Response:
        with self._lock:
            pending = {
                operation: {"kind": kind, "count": count}
                for operation, (kind, count) in self._faults.items()
            }
        return json_response(200, pending)

    def get_calls(self, _request: Request) -> Response:
        with self._lock:
            return json_response(200, dict(sorted(self._calls.items())))

    def reset_calls(self, _request: Request) -> Response:
        with self._lock:
            self._calls.clear()
        return json_response(200, {})


def find_task(arn: str) -> Any:
    try:
        backend = _backend_for_arn(arn)
    except ValueError as error:
        raise BadRequestError(str(error)) from error
    task_id = _last_segment(arn)
    for tasks in backend.tasks.values():
        for task in tasks.values():
            if task.id == task_id:
                return task
    raise BadRequestError(f"no task {arn}", status=404)


def operation_of(environ: dict[str, Any]) -> tuple[str | None, str]:
    """The AWS action a request calls and its protocol ("json" or "query").

    JSON protocols (ECS) name it in X-Amz-Target ("Prefix.Action"); the query
    protocol (EC2) in the Action parameter of the form body or the URL. The
    body is read here and put back for moto.
    """
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1], "json"
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    content_type = environ.get("CONTENT_TYPE", "")
    if not action and content_type.startswith("application/x-www-form-urlencoded"):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > 0:
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
            action = parse_qs(body.decode("utf-8", "replace")).get("Action")
    if action:
        return action[0], "query"
    return None, ""


def aws_error(kind: str, protocol: str) -> Response:
    """An injected error in the shape the caller's protocol expects."""
    request_id = str(uuid.uuid4())
    if protocol == "json":
        if kind == "throttle":
            status, code, message = 400, "ThrottlingException", "Rate exceeded"
        else:
            status, code, message = 500, "ServerException", "injected"
        return Response(
            json.dumps({"__type": code, "message": message}),
            status=status,
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "x-amzn-RequestId": request_id,
            },
        )
    # EC2's query protocol: its XML error document. EC2 answers throttling
    # with 503 RequestLimitExceeded, and server faults with 500 InternalError.
    if kind == "throttle":
        status, code, message = 503, "RequestLimitExceeded", "Request limit exceeded."
    else:
        status, code, message = 500, "InternalError", "injected"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>"
        f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
    )
    return Response(body, status=status, content_type="text/xml;charset=UTF-8")


# --------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------


class QuietRequestHandler(MotoRequestHandler):
    """moto's request handler without a log line per request."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def warm_up(host: str, port: int) -> None:
    """Makes one ECS and one EC2 call so moto loads both backends now.

    moto builds each backend on its first request (about a second for ECS);
    paying that before /_gantry/ready keeps the tests' first calls fast.
    """
    calls = [
        (
            "ecs",
            "{}",
            {
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
            },
        ),
        (
            "ec2",
            "Action=DescribeVpcs&Version=2016-11-15",
            {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        ),
    ]
    for service, body, headers in calls:
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential=test/20250101/{DEFAULT_REGION}/"
            f"{service}/aws4_request, SignedHeaders=host, Signature=0"
        )
        connection = http.client.HTTPConnection(host, port, timeout=60)
        try:
            connection.request("POST", "/", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"warm-up {service} call: HTTP {response.status}")
        finally:
            connection.close()


def exit_with_parent(parent: int) -> None:
    """Ends the process once its parent is gone (the test run died)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--verbose", action="store_true", help="log each request")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="exit when the parent process (the test run) is gone",
    )
    args = parser.parse_args(argv)
    if not is_loopback(args.host):
        parser.error("--host must be a 127.0.0.0/8 address")

    # moto builds some URLs (SQS queue URLs, ...) from this.
    os.environ["MOTO_PORT"] = str(args.port)
    install_patches()

    app = GantryApp(DomainDispatcherApplication(create_backend_app))
    handler = MotoRequestHandler if args.verbose else QuietRequestHandler
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=handler
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if args.exit_with_parent:
        parent = os.getppid()
        threading.Thread(target=exit_with_parent, args=(parent,), daemon=True).start()

    warm_up(args.host, args.port)
    app.reset_calls(None)  # type: ignore[arg-type]
    app.ready.set()
    print(f"gantry_moto ready on http://{args.host}:{args.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
