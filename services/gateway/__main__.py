from libs.kit.serve import main
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings

main("gateway", GatewaySettings, create_app)
