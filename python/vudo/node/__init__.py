"""The node: a supervisor of services (``supervisor``), its lifecycle policy
(``lifecycle``) and the runtime file CLI commands use to find it (``runtime``)."""

from vudo.node.runtime import RUNTIME_FILE, data_dir_runtime
from vudo.node.supervisor import Node, NodeQueries, run_node

__all__ = ["RUNTIME_FILE", "Node", "NodeQueries", "data_dir_runtime", "run_node"]
