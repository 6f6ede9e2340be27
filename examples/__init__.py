"""The example pipelines, shipped inside the package so `mlstack demo` works from a wheel too."""
