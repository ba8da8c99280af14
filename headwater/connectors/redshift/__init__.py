"""Amazon Redshift: the source (over the PostgreSQL protocol, or ``UNLOAD`` to Parquet on S3),
IAM credentials, and the warehouse sink (Parquet staged on S3, ``COPY`` and ``MERGE``).

=================  ==========================================================================
``config``         :class:`RedshiftConnection`, ``connections.<name>`` of ``type: redshift``
``source``         :class:`RedshiftConnector`
``auth``           temporary credentials from ``redshift:GetClusterCredentials``
``sink``           :class:`RedshiftSinkWriter`
``statements``     the SQL text of the sink's statements
=================  ==========================================================================
"""
