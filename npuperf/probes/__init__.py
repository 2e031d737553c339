"""Out-of-process probes that are not engines: they answer how a runtime ran a model
(QNN placement, the HTP performance mode applied, the compile cache), not how fast it
generates text."""
