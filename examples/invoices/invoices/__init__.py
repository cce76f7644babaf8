"""An example application for taskservice: its handlers live in `invoices.handlers`,
the module a deployment names in HANDLER_MODULES."""
