from libs.kit.serve import main
from services.search_indexer.app import create_app
from services.search_indexer.settings import SearchIndexerSettings

main("search-indexer", SearchIndexerSettings, create_app)
