"""The bundled plant simulator: ERP database, OPC-UA server, machine logs and supplier files."""
