"""CSP violation reports: collected by the app, kept in a store, read by `rollout reports`.

    parse.py      a POST body (application/csp-report or application/reports+json) -> CspReport
    limits.py     the endpoint's bounds: body size, reports per client
    endpoint.py   the route the middlewares answer, and the page views they count
    writer.py     the background thread that takes reports and views off the request path
    store.py      SQLite (the default, beside the stage file) and the Store interface
    postgres.py   the same store on PostgreSQL, for several app hosts
    fingerprint.py  which policy a report or a page view belongs to
    app.py        the endpoint as a standalone ASGI app
    summary.py    the reading side: violations of one policy in a window, noise apart
    advice.py     noise rules and the smallest policy change that would allow a violation

The request side (parse, limits, endpoint, writer, store) imports the standard library
only, so an app that adds the middleware pulls in nothing heavy.
"""
