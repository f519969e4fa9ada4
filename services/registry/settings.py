from libs.kit.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    port: int = 8181
