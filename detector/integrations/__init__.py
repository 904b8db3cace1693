"""The detector inside other systems: the web server (`serve`) and Spark (`spark`), each an optional extra.

Its public names are exported here and imported on first use, so importing one module of the package
costs no more than that module.
"""

from detector.core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "ServeConfig": "serve",
    "ServeError": "serve",
    "answers": "serve",
    "check_exposure": "serve",
    "create_app": "serve",
    "is_loopback": "serve",
    "serve": "serve",
    "token_ok": "serve",
    "check_workers": "spark",
    "local_session": "spark",
    "read_spec": "spark",
    "score_dataframe": "spark",
    "spark_error_line": "spark",
    "worker_modules": "spark",
})
