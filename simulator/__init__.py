"""The bundled plant simulator: ERP database, OPC-UA server, machine logs and supplier files;
`simulator.clock` advances it night by night."""
