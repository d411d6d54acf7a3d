"""The run machinery without Ray: units and plans, records, the results store, the worker and its parts."""
