"""The service: the loop (``loop``: `SidecarService`, its start-up report and run summary),
its composition root (``wiring``: every part built from the settings), and what runs
between jobs: acting on incoming changes (``incoming_changes``), keeping the serving base
tidy (``serving_upkeep``), the fleet's rollbacks and catch-up (``fleet_upkeep``) and
coverage-triggered rebuilds (``rebuilds``).

Import from the modules: this package imports nothing itself, so a test of one step does
not build the whole service.
"""
