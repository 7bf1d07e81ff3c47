"""rnnlab: a reproducible pipeline for the recurrent-network experiments of a course."""

# yfinance's HTTP client, curl_cffi, must load before TensorFlow: loaded after it, curl_cffi
# binds to TensorFlow's bundled TLS symbols and every download fails with "Impersonating
# chrome150 is not supported". The package is imported before any of its modules import keras.
try:
    import curl_cffi  # noqa: F401
except ImportError:  # only the prices source needs it
    pass

__version__ = "0.1.0"
