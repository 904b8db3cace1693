"""The detector inside other systems: the web server (`serve`) and Spark (`spark`), each an optional extra.

Its public names are exported here and imported on first use, so importing one module of the package
costs no more than that module.
"""

from detector.core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "ServeConfig": "serve",
    "check_exposure": "serve",
    "create_app": "serve",
    "is_loopback": "serve",
    "token_ok": "serve",
    "score_dataframe": "spark",
    "check_workers": "spark_session",
    "local_session": "spark_session",
    "read_spec": "spark_session",
    "spark_error_line": "spark_session",
    "worker_modules": "spark_session",
})
