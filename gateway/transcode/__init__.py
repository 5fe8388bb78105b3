"""REST/JSON to gRPC transcoding by ``google.api.http`` rules.

The modules here are sans-IO: they parse path templates, match request paths
against them and turn ``HttpRule`` options into route registrations; the HTTP
edge feeds them strings and acts on what they return.
"""
