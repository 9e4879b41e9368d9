"""Ensembles over devices and processes: the leading (member) axis of a batched call is spread
over a 1-D device mesh, padded to a multiple of the device count, and gathered back.

`make_mesh` builds the mesh, `sharded_call` runs an already-batched function on it,
`sharded_vmap` is `sharded_call(jax.vmap(f), ...)`, and `initialize_distributed` joins a
multi-process run so the same calls span every host (see `sharded_call` for that contract).
"""

from ._distributed import initialize_distributed as initialize_distributed
from ._mesh import make_mesh as make_mesh
from ._sharded import (
    clear_cache as clear_cache,
)
from ._sharded import (
    sharded_call as sharded_call,
)
from ._sharded import (
    sharded_vmap as sharded_vmap,
)
