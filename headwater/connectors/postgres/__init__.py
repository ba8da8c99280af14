"""PostgreSQL: the connection model, the source reader (binary COPY through ADBC), partitioned
reads, connection pools, session settings, the type mapping, and the warehouse sink.

=================  ==========================================================================
``config``         :class:`PostgresConnection`, ``connections.<name>`` of ``type: postgres``
``reader``         :class:`PostgresConnector`, the source connector
``partitions``     parallel range reads of one column
``plan``           a described read: columns, Arrow types, parameters, SQL
``pool``           process-wide psycopg and ADBC connection pools
``session``        connection strings, bound values as session settings, errors
``typemap``        PostgreSQL types as Arrow types
``sink``           :class:`PostgresSinkWriter`, loading a view's rows into a table
=================  ==========================================================================
"""
