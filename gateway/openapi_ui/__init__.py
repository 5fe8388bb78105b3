"""Swagger UI's browser assets, vendored here at build time from npm's swagger-ui-dist
by ``scripts/vendor_swagger_ui.sh`` (run by ``make``); not kept in git."""
