"""Wall time of each component of a pipeline run, read from its MLMD database."""
import collections

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2


def component_seconds(metadata_path: str, pipeline_name: str = None) -> dict:
    """{component id: seconds} for the newest run (pipeline run context) in ``metadata_path``.

    A component that was cached in that run appears with its (near zero) cache lookup time.
    """
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    runs = store.get_contexts_by_type("pipeline_run")
    if pipeline_name:
        runs = [r for r in runs if r.name.startswith(pipeline_name)] or runs
    if not runs:
        return {}
    latest = max(runs, key=lambda c: c.create_time_since_epoch)
    times = collections.OrderedDict()
    for execution in sorted(store.get_executions_by_context(latest.id),
                            key=lambda e: e.create_time_since_epoch):
        name = execution.type.rsplit(".", 1)[-1]
        times[name] = round((execution.last_update_time_since_epoch -
                             execution.create_time_since_epoch) / 1000, 1)
    return dict(times)
