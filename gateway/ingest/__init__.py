"""Ingest: what a source hands the gateway becomes readings.

Decoding, the time and deadband policies, and the pipeline that feeds the writer and rules.
"""
