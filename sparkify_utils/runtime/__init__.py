"""Running the project: parameters, the papermill runner, the command line, Spark sessions and local servers."""
