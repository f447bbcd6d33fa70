"""ipsecpcap: forensic analysis of IPsec (IKEv1, IKEv2, ESP, AH, NAT-T) in packet captures.

    >>> import ipsecpcap
    >>> a = ipsecpcap.analyze(["capture.pcap"], keys=["esp_sa"], policy="policy.yml")
    >>> a.sas, a.findings           # pandas DataFrames (ipsecpcap.dataframes)
    >>> a.to_parquet("out/")

``import ipsecpcap`` stays cheap: pandas and pyarrow are imported on the
first call of :func:`analyze`.
"""

__version__ = "0.1.0"
__all__ = ["analyze", "__version__"]


def analyze(paths, *, keys=None, policy=None, rules=None, engine: str = "fast", jobs: int = 1, progress=None):
    """Analyse captures (in time order) and return the DataFrame view,
    :class:`ipsecpcap.dataframes.Analysis`: ``exchanges``, ``ike``, ``sas``,
    ``child_sas``, ``sequence``, ``timeline``, ``flows``, ``findings`` as
    DataFrames, ``accounting``, ``summary()``, ``records`` (the record-level
    analysis the command line prints), ``to_parquet/to_csv/to_json(dir)`` and
    ``to_pdf(path)``.  Arguments as :func:`ipsecpcap.analysis.analyze`."""
    from .dataframes import analyze as _analyze

    return _analyze(paths, keys=keys, policy=policy, rules=rules, engine=engine, jobs=jobs, progress=progress)
